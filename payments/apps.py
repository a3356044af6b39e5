from datetime import timedelta

from django.apps import AppConfig
from django.conf import settings

BEAT = {
    "payments.reconcile": {"task": "payments.tasks.reconcile_everywhere", "schedule": timedelta(minutes=5)},
    # Hourly, idempotent per (tenant, day): the bill appears around 10:00 Beijing time, whenever that is.
    "payments.trade-bills": {"task": "payments.tasks.check_bills_everywhere", "schedule": timedelta(hours=1)},
}


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from payments import privacy, seeding

        privacy.register()
        seeding.register()
        for name, entry in BEAT.items():
            settings.CELERY_BEAT_SCHEDULE.setdefault(name, entry)
