from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"

    def ready(self) -> None:
        # Registers profiles' own member-linked tables for export and erasure.
        from profiles import privacy  # noqa: F401
        from profiles.computation import privacy as computed  # noqa: F401
