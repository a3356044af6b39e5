"""State changes of members: sign-in, consent, erasure, behaviour events.

Each takes the tenant first and the member acting keyword-only, and runs in that tenant's context
(re-entering it when the caller already did), so the API, the console, tasks and tests share them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from profiles import event_store, ingest, privacy
from profiles.models import ConsentEvent, Member, MemberProfile, Recommendation
from tenants.actions import audit
from tenants.context import current_tenant, tenant_context
from tenants.models import Tenant

# last_seen_at is for "active in the last N days" segments: minute precision is plenty, and not
# rewriting the row on every batch keeps concurrent batches of one member from queueing on it.
LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)
TOMBSTONE_PREFIX = "erased:"


def sign_in_member(tenant: Tenant, *, openid: str, unionid: str = "") -> Member:
    """The member for this WeChat user (created on first sign-in), marked as seen now.

    Concurrent first sign-ins of one user meet at the (tenant, openid) unique constraint:
    ``get_or_create`` turns the loser's IntegrityError into a read of the winner's row.
    """
    now = timezone.now()
    with tenant_context(tenant):
        member, created = Member.objects.get_or_create(
            openid=openid, defaults={"unionid": unionid, "last_seen_at": now}
        )
        if not created:
            changes: dict[str, object] = {"last_seen_at": now}
            if unionid and member.unionid != unionid:
                changes["unionid"] = unionid
            Member.objects.filter(pk=member.pk).update(**changes)
            for name, value in changes.items():
                setattr(member, name, value)
    return member


def set_consent(tenant: Tenant, *, member: Member, marketing: bool | None = None,
                profiling: bool | None = None, source: str = "miniprogram") -> list[ConsentEvent]:
    """Record the member's choices; only a change writes a history row. Returns the rows written."""
    now = timezone.now()
    written: list[ConsentEvent] = []
    with tenant_context(tenant):
        current = Member.objects.select_for_update().get(pk=member.pk)
        changed: list[str] = []
        for kind, wanted in ((ConsentEvent.Kind.MARKETING, marketing), (ConsentEvent.Kind.PROFILING, profiling)):
            if wanted is None or getattr(current, f"consent_{kind}") == wanted:
                continue
            setattr(current, f"consent_{kind}", wanted)
            setattr(current, f"consent_{kind}_at", now)
            changed += [f"consent_{kind}", f"consent_{kind}_at"]
            written.append(ConsentEvent(member=current, kind=kind, granted=wanted, source=source))
        if written:
            current.save(update_fields=changed)
            ConsentEvent.objects.bulk_create(written)
        if profiling is False and "consent_profiling" in changed:
            _forget_personalisation(current)
    for name in ("consent_marketing", "consent_marketing_at", "consent_profiling", "consent_profiling_at"):
        setattr(member, name, getattr(current, name))
    return written


def _forget_personalisation(member: Member) -> None:
    """Profiling withdrawn: drop what was inferred about the member now, not at the next run.

    Only the plain purchase facts stay (what a member who never consented keeps after a run).
    """
    Recommendation.objects.filter(member=member).delete()
    MemberProfile.objects.filter(member=member).update(
        profiled=False, r_score=None, f_score=None, m_score=None, rfm_segment="", cluster=None,
        cluster_label="", interest_tags=[], propensity=None, predicted_spend_fen=None,
    )


def erase_member(tenant: Tenant, *, member: Member) -> None:
    """Erase what is held about the member (PIPL deletion request).

    The row stays, emptied, so that what other apps must keep (a paid order, for the accounts) can
    point at "an erased member" rather than at nobody; the openid becomes a random tombstone, so the
    same WeChat user signing in again starts as a new, empty member and cannot be linked back.
    """
    with tenant_context(tenant):
        current = Member.objects.select_for_update().get(pk=member.pk)
        privacy.erase_sections(current)
        blank = {
            "openid": TOMBSTONE_PREFIX + secrets.token_hex(16),
            "unionid": "", "nickname": "", "avatar_url": "", "gender": Member.Gender.UNKNOWN,
            "birthday": None, "city": "", "phone": "", "phone_masked": "", "phone_digest": "",
            "tier": "", "points": 0, "consent_marketing": False, "consent_marketing_at": None,
            "consent_profiling": False, "consent_profiling_at": None, "last_seen_at": None,
            "erased_at": timezone.now(),
        }
        for name, value in blank.items():
            setattr(current, name, value)
        current.save(update_fields=list(blank))
        audit(tenant, "member.erased", target=f"member:{current.pk}")
    member.erased_at = current.erased_at


def _in_tenant(tenant: Tenant):
    """The tenant's context, reusing the caller's when it is already open: on the per-batch hot path
    a nested context would cost a savepoint and two more round trips for nothing."""
    active = current_tenant()
    return nullcontext() if active is not None and active.pk == tenant.pk else tenant_context(tenant)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, object]] = field(default_factory=list)


def record_events(tenant: Tenant, body: bytes, *, member: Member, now: dt.datetime | None = None) -> IngestResult:
    """Validate a batch (raw JSON body), store its new events, count duplicates and rejections.

    Raises ``ingest.BatchError`` when the batch as a whole is refused.
    """
    now = now or timezone.now()
    batch = ingest.parse(body, now)
    rejected = batch.rejected
    with _in_tenant(tenant):
        event_store.relax_commit()
        wanted = {r.sku for r in batch.rows if r.sku is not None}
        wanted.update(sku for r in batch.rows for sku in r.item_skus)
        # Deactivated items still count: an event may concern something no longer sold.
        item_ids = event_store.item_ids_for(wanted)
        rows: list[ingest.EventRow] = []
        seen: set[str] = set()
        duplicates = 0
        for row in batch.rows:
            unknown = next((s for s in (row.sku, *row.item_skus) if s is not None and s not in item_ids), None)
            if unknown is not None:
                rejected.append(ingest.Rejection(row.index, "unknown_sku", f"No item with sku {unknown!r}."))
            elif row.event_id in seen:
                duplicates += 1
            else:
                seen.add(row.event_id)
                rows.append(row)
        accepted = event_store.insert_events(tenant.pk, member.pk, rows, item_ids)
        duplicates += len(rows) - accepted
        if member.last_seen_at is None or member.last_seen_at < now - LAST_SEEN_RESOLUTION:
            Member.objects.filter(pk=member.pk).filter(
                Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now - LAST_SEEN_RESOLUTION)
            ).update(last_seen_at=now)
            member.last_seen_at = now
    rejected.sort(key=lambda r: r.index)
    return IngestResult(accepted=accepted, duplicates=duplicates, rejected=[r.as_dict() for r in rejected])
