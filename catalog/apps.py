from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "catalog"

    def ready(self) -> None:
        from tenants import console_nav

        console_nav.register(console_nav.NavEntry("catalog", _("商品"), "catalog:index"), before="segments")
