"""Coupon and points work for the workers: bulk grants chunk by chunk, expiry, reminders, tier benefits."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.dispatch import Signal
from django.utils import timezone

from campaigns import actions, queries
from campaigns.actions.points import TIER_REASONS
from campaigns.models import Channel, Coupon, GrantJob, PointsEntry, Tier
from profiles.models import Member
from tenants.context import require_tenant
from tenants.tasks import enqueue_on_commit, fan_out, tenant_task

logger = logging.getLogger("jingzhun.campaigns")

# Sent once per coupon that is about to expire, inside the tenant's context (the reminder hook):
# campaigns connect a receiver that pushes "your coupon expires in 3 days". kwargs: tenant, coupons.
coupons_expiring = Signal()

REMIND_BEFORE = timedelta(days=3)


@tenant_task(max_retries=3, default_retry_delay=10)
def run_grant_job(tenant_id: int, job_id: int) -> None:
    """One chunk per task run (one transaction each, so progress shows); the next is chained."""
    if actions.run_grant_chunk(require_tenant(), job_id):
        enqueue_on_commit(run_grant_job, tenant_id, job_id)


@tenant_task()
def expire_coupons(tenant_id: int) -> int:
    count = actions.expire_coupons(require_tenant())
    if count:
        logger.info("tenant %s: %d coupons expired", tenant_id, count)
    return count


@tenant_task()
def expire_points(tenant_id: int, after_member_id: int = 0) -> int:
    """One chunk of members per run (its own transaction: their rows are locked only that long); the
    next chunk is chained. Re-running, or running twice at once, expires nothing twice."""
    chunk = actions.expire_points_chunk(require_tenant(), after_member_id=after_member_id)
    if chunk.next_after is not None:
        enqueue_on_commit(expire_points, tenant_id, chunk.next_after)
    if chunk.expired_members:
        logger.info("tenant %s: %d points of %d members expired", tenant_id, chunk.expired_points,
                    chunk.expired_members)
    return chunk.expired_points


@tenant_task()
def remind_expiring_coupons(tenant_id: int, days: int = REMIND_BEFORE.days) -> int:
    tenant = require_tenant()
    coupons = list(queries.expiring_coupons(timedelta(days=days)).select_related("member", "template")[:10_000])
    if not coupons:
        return 0
    coupons_expiring.send(sender=expire_coupons, tenant=tenant, coupons=coupons)
    Coupon.objects.filter(pk__in=[c.pk for c in coupons], reminded_at__isnull=True).update(reminded_at=timezone.now())
    return len(coupons)


@tenant_task()
def grant_monthly_tier_benefits(tenant_id: int, month: str | None = None) -> int:
    """The tiers' monthly coupons: one bulk job per tier and month (re-running the month is a no-op)."""
    tenant = require_tenant()
    month = month or timezone.now().astimezone(timezone.get_default_timezone()).strftime("%Y-%m")
    started = 0
    for tier in Tier.objects.filter(monthly_template__isnull=False):
        key = f"tier:{tier.pk}:{month}"
        if GrantJob.objects.filter(idempotency_key=key).exists():
            continue
        if not Member.objects.filter(tier=tier.name, erased_at__isnull=True).exists():
            continue
        try:
            actions.start_grant_job(tenant, tier.monthly_template_id, actor=None, tier=tier.name,
                                    channel=Channel.TIER, idempotency_key=key,
                                    reason=f"{tier.name} monthly benefit {month}")
            started += 1
        except Exception:
            logger.exception("tenant %s: monthly benefit of tier %s not started", tenant_id, tier.pk)
    return started


@tenant_task()
def evaluate_tiers(tenant_id: int) -> int:
    """After tier thresholds change: every member with points history is placed again."""
    tenant = require_tenant()
    changed = 0
    earners = PointsEntry.objects.filter(reason__in=TIER_REASONS).values("member_id")
    placed = Member.objects.filter(erased_at__isnull=True).exclude(tier="")
    for member in (Member.objects.filter(erased_at__isnull=True, pk__in=earners) | placed).iterator(2000):
        before = member.tier
        if actions.evaluate_tier(tenant, member) != before:
            changed += 1
    return changed


# Beat entries (campaigns.apps adds them to the schedule): fan out over active tenants.


@shared_task
def expire_coupons_everywhere() -> int:
    return fan_out(expire_coupons)


@shared_task
def expire_points_everywhere() -> int:
    return fan_out(expire_points)


@shared_task
def remind_expiring_coupons_everywhere() -> int:
    return fan_out(remind_expiring_coupons)


@shared_task
def grant_monthly_tier_benefits_everywhere() -> int:
    return fan_out(grant_monthly_tier_benefits)
