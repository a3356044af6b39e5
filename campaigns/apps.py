from datetime import timedelta

from celery.schedules import crontab
from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save

BEAT = {
    "campaigns.expire-coupons": {"task": "campaigns.tasks.expire_coupons_everywhere",
                                 "schedule": timedelta(minutes=10)},
    "campaigns.remind-expiring-coupons": {"task": "campaigns.tasks.remind_expiring_coupons_everywhere",
                                          "schedule": timedelta(hours=6)},
    # Just after midnight in Beijing: points expire by calendar day (actions.points.expiry_cutoff).
    "campaigns.expire-points": {"task": "campaigns.tasks.expire_points_everywhere",
                                "schedule": crontab(hour=16, minute=20)},
    "campaigns.monthly-tier-benefits": {"task": "campaigns.tasks.grant_monthly_tier_benefits_everywhere",
                                        "schedule": timedelta(hours=12)},
}


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        from campaigns import privacy, signals

        privacy.register()

        # Each app contributes its own beat entries; the monthly job is idempotent per tier and month.
        for name, entry in BEAT.items():
            settings.CELERY_BEAT_SCHEDULE.setdefault(name, entry)
        post_save.connect(signals.welcome_new_member, sender="profiles.Member",
                          dispatch_uid="campaigns.welcome_new_member")
