"""Bulk grants: one coupon each to a pasted/uploaded openid list, a member list, or a tier/tag filter.

A job runs in chunks, each its own transaction, so the console shows progress and a crashed
worker resumes where the last committed chunk ended. Each member gets at most one coupon per job
(the job's idempotency key is on every coupon it issues), so a retried chunk issues nothing twice.
Segments and campaigns reuse this with ``member_ids`` and their own channel.

On PostgreSQL a chunk is set-based: one statement picks the chunk's members (the next id range
of the filter, or the next slice of the list joined to the members table), leaves out those this
job already served, bumps the counters of those still under their limit (in member-id order, the
same lock order as a self-claim) and inserts their coupons, as many as the stock had room for when
the chunk began; a second statement takes that stock, last, so the hot template row is locked
only until the commit right after it. Lists travel as one JSON parameter, not 10,000 quoted ones.
If claims took the stock meanwhile, the chunk gives back what it cannot keep before committing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import queries
from campaigns.actions.coupons import _bump_counter
from campaigns.actions.issuance import check_claimable, validity_for
from campaigns.exceptions import CouponError
from campaigns.models import Channel, ClaimCounter, Coupon, CouponTemplate, GrantJob, new_coupon_code
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
        check_claimable(template, channel, timezone.now())
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


@dataclass
class ChunkOutcome:
    cursor: int
    finished: bool
    processed: int = 0
    not_found: int = 0
    granted: int = 0
    skipped_limit: int = 0
    skipped_stock: int = 0


def run_grant_chunk(tenant: Tenant, job_id: int, *, size: int = CHUNK, now: datetime | None = None) -> bool:
    """Grant to the job's next chunk of members; True while there is more to do."""
    now = now or timezone.now()
    with within(tenant):
        job = GrantJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in (GrantJob.State.DONE, GrantJob.State.FAILED):
            return False
        template = CouponTemplate.objects.get(pk=job.template_id)
        try:
            check_claimable(template, job.channel, now)
        except CouponError as exc:
            if exc.code != "sold_out":
                return _finish(tenant, job, now, error=exc.code)
        chunk = _chunk_in_sql if connection.vendor == "postgresql" else _chunk_portable
        outcome = chunk(tenant, template, job, size, now)
        job.state = GrantJob.State.RUNNING
        job.cursor = outcome.cursor
        job.processed += outcome.processed
        job.not_found += outcome.not_found
        job.granted += outcome.granted
        job.skipped_limit += outcome.skipped_limit
        job.skipped_stock += outcome.skipped_stock
        job.save(update_fields=["state", "cursor", "processed", "not_found", "granted", "skipped_limit",
                                "skipped_stock"])
        if outcome.finished:
            return _finish(tenant, job, now)
        return True


def _chunk_portable(tenant: Tenant, template: CouponTemplate, job: GrantJob, size: int,
                    now: datetime) -> ChunkOutcome:
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
    return ChunkOutcome(cursor, finished, processed=len(member_ids) + not_found, not_found=not_found,
                        granted=len(granted), skipped_limit=len(todo) - len(counted), skipped_stock=len(missed))


def _candidates(job: GrantJob, size: int) -> tuple[str, list, int | None]:
    """The chunk's members as SQL (one ``id`` column, ascending), its parameters, and the list's length."""
    listed = _listed(job.audience)
    member = Member._meta.db_table
    if listed is None:
        qs = _audience_queryset(job.audience).filter(pk__gt=job.cursor).order_by("pk").values("pk")[:size]
        sql, params = qs.query.sql_with_params()
        return sql, list(params), None
    part = json.dumps(listed[job.cursor:job.cursor + size])
    if "openids" in job.audience:
        sql = (f"SELECT DISTINCT m.id FROM jsonb_array_elements_text(%s::jsonb) AS o(openid) "  # noqa: S608
               f"JOIN {member} AS m ON m.tenant_id = %s AND m.openid = o.openid WHERE m.erased_at IS NULL")
    else:
        sql = (f"SELECT DISTINCT m.id FROM jsonb_array_elements_text(%s::jsonb) AS o(id) "  # noqa: S608
               f"JOIN {member} AS m ON m.tenant_id = %s AND m.id = o.id::bigint WHERE m.erased_at IS NULL")
    return sql, [part, job.tenant_id], min(size, len(listed) - job.cursor)


# ``cand``: the chunk; ``todo``: minus members this job already served (a retried chunk), probed one
# index look-up per member (an anti-join would read the tenant's whole idempotency index per chunk);
# ``eligible``: those whose counter was under the limit, now counted; ``issued``: coupons for the
# first of them, up to the room the stock had. Codes are matched to members by position.
_CHUNK_SQL = """
WITH cand (id) AS MATERIALIZED ({candidates}),
todo AS (
    SELECT cand.id FROM cand LEFT JOIN LATERAL (
        SELECT 1 AS held FROM {coupon} AS c
        WHERE c.tenant_id = %s AND c.member_id = cand.id AND NOT (c.idempotency_key = '') AND c.idempotency_key = %s
        LIMIT 1
    ) AS h ON true
    WHERE h.held IS NULL
), counted AS (
    INSERT INTO {counter} AS k (tenant_id, template_id, member_id, count)
    SELECT %s, %s, todo.id, 1 FROM todo WHERE %s > 0 ORDER BY todo.id
    ON CONFLICT (tenant_id, template_id, member_id) DO UPDATE SET count = k.count + 1 WHERE k.count < %s
    RETURNING k.member_id
), eligible AS (
    SELECT member_id AS id FROM counted UNION ALL SELECT id FROM todo WHERE %s = 0
), granted AS (
    SELECT id, row_number() OVER (ORDER BY id) AS n FROM eligible ORDER BY id LIMIT %s
), issued AS (
    INSERT INTO {coupon} (tenant_id, template_id, member_id, code, state, claimed_at, valid_from, valid_until,
        order_ref, channel, campaign_ref, granted_by_id, idempotency_key)
    SELECT %s, %s, g.id, codes.code, %s, %s, %s, %s, '', %s, %s, %s, %s
    FROM granted AS g JOIN jsonb_array_elements_text(%s::jsonb) WITH ORDINALITY AS codes(code, n) ON codes.n = g.n
    RETURNING member_id
)
SELECT (SELECT count(*) FROM cand), (SELECT max(id) FROM cand), (SELECT count(*) FROM todo),
       (SELECT count(*) FROM eligible), (SELECT count(*) FROM issued),
       (SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM eligible
        WHERE id NOT IN (SELECT member_id FROM issued)),
       (SELECT coalesce(string_agg(member_id::text, ','), '') FROM issued)
"""


def _chunk_in_sql(tenant: Tenant, template: CouponTemplate, job: GrantJob, size: int,
                  now: datetime) -> ChunkOutcome:
    candidates, cand_params, listed = _candidates(job, size)
    room = None if template.stock is None else max(template.stock - template.issued, 0)
    limit = template.per_member_limit
    valid_from, valid_until = validity_for(template, now)
    at_most = size if listed is None else listed
    codes = json.dumps([new_coupon_code() for _ in range(at_most if room is None else min(at_most, room))])
    sql = _CHUNK_SQL.format(candidates=candidates, coupon=Coupon._meta.db_table,
                            counter=ClaimCounter._meta.db_table)
    params = [*cand_params, tenant.pk, job.idempotency_key, tenant.pk, template.pk, limit, limit, limit, room,
              tenant.pk, template.pk, Coupon.State.UNUSED, now, valid_from, valid_until, job.channel,
              job.campaign_ref, job.created_by_id, job.idempotency_key, codes]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        n_cand, last_id, n_todo, n_eligible, n_inserted, missed, inserted = cursor.fetchone()
    if missed and limit:  # members the stock had no room for keep their unused limit
        _put_counters_back(tenant, template, missed)
    n_issued = _take_stock_or_give_back(tenant, template, job, _ids(inserted)) if n_inserted else 0
    if listed is None:
        cursor_at, finished, not_found = (last_id or job.cursor), n_cand < size, 0
    else:
        cursor_at, not_found = job.cursor + listed, listed - n_cand
        finished = cursor_at >= len(_listed(job.audience))
    return ChunkOutcome(cursor_at, finished, processed=n_cand + not_found, not_found=not_found, granted=n_issued,
                        skipped_limit=n_todo - n_eligible, skipped_stock=n_eligible - n_issued)


def _ids(text: str) -> list[int]:
    return [int(i) for i in text.split(",")] if text else []


def _put_counters_back(tenant: Tenant, template: CouponTemplate, ids_text: str) -> None:
    """One statement for any number of members: the ids travel as one text parameter."""
    table = ClaimCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET count = count - 1 WHERE tenant_id = %s AND template_id = %s "  # noqa: S608
            "AND member_id = ANY(string_to_array(%s, ',')::bigint[])",
            [tenant.pk, template.pk, ids_text],
        )


def _take_stock_or_give_back(tenant: Tenant, template: CouponTemplate, job: GrantJob,
                             issued_ids: list[int]) -> int:
    """Take stock for the coupons just inserted, last; if claims took it meanwhile, undo the surplus.

    Returns how many coupons this chunk keeps.
    """
    n = len(issued_ids)
    if not n:
        return 0
    qs = CouponTemplate.objects.filter(pk=template.pk)
    if template.stock is None:
        qs.update(issued=F("issued") + n)
        return n
    if qs.filter(issued__lte=F("stock") - n).update(issued=F("issued") + n) == 1:
        return n
    locked = CouponTemplate.objects.select_for_update().get(pk=template.pk)
    keep = n if locked.stock is None else max(min(n, locked.stock - locked.issued), 0)
    surplus = sorted(issued_ids)[keep:]
    if surplus:
        Coupon.objects.filter(idempotency_key=job.idempotency_key, member_id__in=surplus).delete()
        if template.per_member_limit:
            _put_counters_back(tenant, template, ",".join(map(str, surplus)))
    if keep:
        qs.update(issued=F("issued") + keep)
    return keep


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
