"""Bulk grants: one coupon each to a pasted/uploaded openid list, a member list, or a tier/tag filter.

A job runs in chunks, each its own transaction, so the console shows progress and a crashed
worker resumes where the last committed chunk ended. Each member gets at most one coupon per job
(the job's idempotency key is on every coupon it issues), so a retried chunk issues nothing twice.
Per chunk: counters are bumped for the members still under their limit (in member-id order, the
same lock order as a self-claim), then the template row is locked and as much stock taken as is
left, the counters of members who missed out are put back, and the coupons are inserted in one
statement. Segments and campaigns reuse this with ``member_ids`` and their own channel.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import queries
from campaigns.actions.coupons import _bump_counter, _check_claimable, validity_for
from campaigns.exceptions import CouponError
from campaigns.models import Channel, ClaimCounter, Coupon, CouponTemplate, GrantJob
from campaigns.scope import within
from profiles.models import Member, MemberTag
from tenants.actions import audit
from tenants.models import Tenant

CHUNK = 10_000
MAX_LISTED = 200_000


def _audience_queryset(audience: dict) -> QuerySet[Member]:
    qs = Member.objects.filter(erased_at__isnull=True)
    if audience.get("tier") is not None:
        qs = qs.filter(tier=audience["tier"])
    if audience.get("tag_ids"):
        qs = qs.filter(pk__in=MemberTag.objects.filter(tag_id__in=audience["tag_ids"]).values("member_id"))
    return qs


def _listed(audience: dict) -> list | None:
    if "openids" in audience:
        return audience["openids"]
    if "member_ids" in audience:
        return audience["member_ids"]
    return None


def parse_openids(text: str) -> list[str]:
    """Openids pasted one per line (or separated by commas, spaces); order kept, duplicates dropped."""
    seen: dict[str, None] = {}
    for token in text.replace(",", "\n").split():
        token = token.strip().strip('"')
        if token:
            seen.setdefault(token[:64], None)
    return list(seen)


def start_grant_job(tenant: Tenant, template_id: int, *, actor, reason: str, openids: Sequence[str] | None = None,
                    member_ids: Sequence[int] | None = None, tier: str | None = None,
                    tag_ids: Sequence[int] | None = None, channel: str = Channel.STAFF, campaign_ref: str = "",
                    idempotency_key: str = "") -> GrantJob:
    """Queue a bulk grant; the worker runs it after this transaction commits."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": [_("请填写发放原因。")]})
    if openids is not None:
        audience: dict = {"openids": list(dict.fromkeys(openids))}
    elif member_ids is not None:
        audience = {"member_ids": sorted({int(m) for m in member_ids})}
    else:
        audience = {"tier": tier, "tag_ids": sorted({int(t) for t in tag_ids or ()})}
        if tier is None and not audience["tag_ids"]:
            audience["all"] = True
    listed = _listed(audience)
    if listed is not None and not listed:
        raise ValidationError({"openids": [_("名单是空的。")]})
    if listed is not None and len(listed) > MAX_LISTED:
        raise ValidationError({"openids": [_("一次最多发放 %(n)d 人。") % {"n": MAX_LISTED}]})
    with within(tenant):
        template = queries.get_template(template_id)
        _check_claimable(template, channel, timezone.now())
        key = idempotency_key or f"job:{uuid.uuid4().hex}"
        existing = GrantJob.objects.filter(template=template, idempotency_key=key).first()
        if existing is not None:
            return existing
        total = len(listed) if listed is not None else _audience_queryset(audience).count()
        job = GrantJob.objects.create(template=template, channel=channel, campaign_ref=campaign_ref,
                                      audience=audience, idempotency_key=key, reason=reason[:200],
                                      total=total, created_by=actor)
        audit(tenant, "coupon.bulk_grant_started", actor=actor, target=f"template:{template.pk}",
              job=job.pk, template_name=template.name, audience=_describe(audience), total=total,
              channel=channel, reason=reason)
        from campaigns.tasks import run_grant_job

        transaction.on_commit(lambda: run_grant_job.delay(tenant.pk, job.pk))
        return job


def _describe(audience: dict) -> dict:
    if "openids" in audience:
        return {"openids": len(audience["openids"])}
    if "member_ids" in audience:
        return {"member_ids": len(audience["member_ids"])}
    return {k: v for k, v in audience.items() if v not in (None, [])}


def _next_members(job: GrantJob, size: int) -> tuple[list[int], int, int, bool]:
    """(member ids, next cursor, listed entries not found, finished)."""
    listed = _listed(job.audience)
    if listed is not None:
        part = listed[job.cursor:job.cursor + size]
        if "openids" in job.audience:
            ids = list(Member.objects.filter(openid__in=part, erased_at__isnull=True).values_list("pk", flat=True))
        else:
            ids = list(Member.objects.filter(pk__in=part, erased_at__isnull=True).values_list("pk", flat=True))
        end = job.cursor + len(part)
        return sorted(ids), end, len(part) - len(ids), end >= len(listed)
    ids = list(_audience_queryset(job.audience).filter(pk__gt=job.cursor).order_by("pk")
               .values_list("pk", flat=True)[:size])
    return ids, (ids[-1] if ids else job.cursor), 0, len(ids) < size


def _bump_counters(tenant: Tenant, template: CouponTemplate, member_ids: list[int]) -> list[int]:
    """The members (ascending) whose counter was still under the limit, now counted one more."""
    if connection.vendor != "postgresql":
        return [m for m in member_ids if _bump_counter(tenant, template, m)]
    table = ClaimCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, template_id, member_id, count) "  # noqa: S608
            "SELECT %s, %s, m, 1 FROM unnest(%s::bigint[]) AS m ORDER BY m "
            f"ON CONFLICT (tenant_id, template_id, member_id) DO UPDATE SET count = {table}.count + 1 "
            f"WHERE {table}.count < %s RETURNING member_id",
            [tenant.pk, template.pk, member_ids, template.per_member_limit],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _insert_coupons(tenant: Tenant, template: CouponTemplate, job: GrantJob, member_ids: list[int],
                    now: datetime) -> None:
    valid_from, valid_until = validity_for(template, now)
    codes = [Coupon._meta.get_field("code").default() for _ in member_ids]
    if connection.vendor != "postgresql":
        Coupon.objects.bulk_create(
            [Coupon(template=template, member_id=m, code=c, claimed_at=now, valid_from=valid_from,
                    valid_until=valid_until, channel=job.channel, campaign_ref=job.campaign_ref,
                    granted_by_id=job.created_by_id, idempotency_key=job.idempotency_key)
             for m, c in zip(member_ids, codes, strict=True)],
            batch_size=2000,
        )
        return
    table = Coupon._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, template_id, member_id, code, state, claimed_at, valid_from, "  # noqa: S608
            "valid_until, order_ref, channel, campaign_ref, granted_by_id, idempotency_key) "
            "SELECT %s, %s, u.m, u.c, %s, %s, %s, %s, '', %s, %s, %s, %s "
            "FROM unnest(%s::bigint[], %s::text[]) AS u(m, c)",
            [tenant.pk, template.pk, Coupon.State.UNUSED, now, valid_from, valid_until, job.channel,
             job.campaign_ref, job.created_by_id, job.idempotency_key, member_ids, codes],
        )


def run_grant_chunk(tenant: Tenant, job_id: int, *, size: int = CHUNK, now: datetime | None = None) -> bool:
    """Grant to the job's next chunk of members; True while there is more to do."""
    now = now or timezone.now()
    with within(tenant):
        job = GrantJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in (GrantJob.State.DONE, GrantJob.State.FAILED):
            return False
        template = CouponTemplate.objects.get(pk=job.template_id)
        try:
            _check_claimable(template, job.channel, now)
        except CouponError as exc:
            if exc.code != "sold_out":
                return _finish(tenant, job, now, error=exc.code)
        member_ids, cursor, not_found, finished = _next_members(job, size)
        held = set(Coupon.objects.filter(idempotency_key=job.idempotency_key, member_id__in=member_ids)
                   .values_list("member_id", flat=True))
        todo = [m for m in member_ids if m not in held]
        counted = _bump_counters(tenant, template, todo) if template.per_member_limit and todo else todo
        template = CouponTemplate.objects.select_for_update().get(pk=template.pk)
        room = len(counted) if template.stock is None else max(template.stock - template.issued, 0)
        granted, missed = counted[:room], counted[room:]
        if missed and template.per_member_limit:
            ClaimCounter.objects.filter(template=template, member_id__in=missed).update(count=F("count") - 1)
        if granted:
            CouponTemplate.objects.filter(pk=template.pk).update(issued=F("issued") + len(granted))
            _insert_coupons(tenant, template, job, granted, now)
        job.state = GrantJob.State.RUNNING
        job.cursor = cursor
        job.processed += len(member_ids) + not_found
        job.not_found += not_found
        job.granted += len(granted)
        job.skipped_limit += len(todo) - len(counted)
        job.skipped_stock += len(missed)
        job.save(update_fields=["state", "cursor", "processed", "not_found", "granted", "skipped_limit",
                                "skipped_stock"])
        if finished:
            return _finish(tenant, job, now)
        return True


def _finish(tenant: Tenant, job: GrantJob, now: datetime, error: str = "") -> bool:
    job.state = GrantJob.State.FAILED if error else GrantJob.State.DONE
    job.error = error
    job.finished_at = now
    job.save(update_fields=["state", "error", "finished_at"])
    audit(tenant, "coupon.bulk_grant_finished", actor=job.created_by, target=f"template:{job.template_id}",
          job=job.pk, granted=job.granted, skipped_limit=job.skipped_limit, skipped_stock=job.skipped_stock,
          not_found=job.not_found, error=error, reason=job.reason)
    return False


def run_grant_job(tenant: Tenant, job_id: int, *, size: int = CHUNK) -> GrantJob:
    """Every chunk now, each committed on its own (commands, benchmarks; the worker chains chunks)."""
    while run_grant_chunk(tenant, job_id, size=size):
        pass
    with within(tenant):
        return GrantJob.objects.get(pk=job_id)
