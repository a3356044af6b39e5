"""Points and tiers. The ledger is the truth; ``Member.points`` caches its running balance.

Every change is one conditional ``UPDATE … SET points = points + delta WHERE points + delta >= 0``
on the member row (which also serialises concurrent changes for that member) followed by the
ledger row carrying ``balance_after``; both commit or neither does. So the balance never goes
negative and always equals the sum of the ledger. A change keyed by ``ref`` (an order, a refund,
a coupon code) happens once: the unique (member, reason, ref) makes a retry a no-op.

Expiry (when the tenant sets a validity of N months) is first in, first out: whatever left the
balance (spent on coupons, taken back by refunds, adjusted away, expired before) used up the
oldest points first. So what is left of the points credited before the cut-off is
``credited before the cut-off − everything that ever left``, when positive, and that expires.
Refunds count like any other spend here: the ledger does not say which order's points a refund
took back, only how many.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import date, datetime, time

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import queries
from campaigns.actions.coupons import claim_coupon
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import Channel, LoyaltySettings, PointsEntry, Tier
from campaigns.scope import joined, within
from profiles.models import Member
from tenants.actions import audit
from tenants.context import require_tenant
from tenants.models import Tenant

logger = logging.getLogger("jingzhun.campaigns")

Reason = PointsEntry.Reason
# Reasons that count toward tiers: what was earned by paying, net of what refunds took back.
TIER_REASONS = (Reason.EARN, Reason.REFUND)
MAX_EXPIRE_MONTHS = 120
# Members per expiry unit of work: their rows stay locked until it commits.
EXPIRY_CHUNK = 2000


def _apply(member_id: int, delta: int) -> int | None:
    """Add ``delta`` unless the balance would go below zero; the new balance, or None if refused."""
    table = Member._meta.db_table
    tenant = require_tenant()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET points = points + %s "  # noqa: S608 - table name from the model
            "WHERE id = %s AND tenant_id = %s AND points + %s >= 0 RETURNING points",
            [delta, member_id, tenant.pk, delta],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


# change_points, earn_for_order and evaluate_tier join the caller's unit of work without a savepoint
# (a paid order's fulfilment runs all three: six round trips fewer); change_points keeps its own
# savepoint around the only writes that can fail and be recovered from.
def change_points(tenant: Tenant, member: Member, delta: int, reason: str, *, ref: str = "",
                  amount_fen: int = 0, tier_points: int | None = None, note: str = "", actor=None,
                  rules: LoyaltySettings | None = None) -> PointsEntry:
    """One ledger change. Raises CouponError ``insufficient_points`` if it would go below zero."""
    if reason not in Reason.values:
        raise ValueError(f"unknown points reason {reason!r}")
    ref = (ref or "")[:64]
    if member.tenant_id != tenant.pk:
        raise NotFound(member.pk)
    with joined(tenant):
        if ref:
            done = PointsEntry.objects.filter(member=member, reason=reason, ref=ref).first()
            if done is not None:
                return done
        try:
            with transaction.atomic():
                balance = _apply(member.pk, delta)
                if balance is None:
                    raise CouponError("insufficient_points", balance=_balance(member), needed=-delta)
                entry = PointsEntry.objects.create(member=member, delta=delta, balance_after=balance,
                                                   reason=reason, ref=ref, amount_fen=amount_fen,
                                                   tier_points=delta if tier_points is None else tier_points,
                                                   note=note[:200], actor=actor)
        except IntegrityError:
            # The same (reason, ref) was committed by a concurrent call: that one counts.
            done = PointsEntry.objects.filter(member=member, reason=reason, ref=ref).first() if ref else None
            if done is None:
                raise
            return done
        member.points = balance
        if reason in TIER_REASONS:
            evaluate_tier(tenant, member, rules)
        return entry


def _balance(member: Member) -> int:
    return int(Member.objects.filter(pk=member.pk).values_list("points", flat=True).first() or 0)


def earn_for_order(tenant: Tenant, member: Member, *, order_ref: str, paid_fen: int) -> PointsEntry | None:
    """Points for a paid order by the tenant's rule and the member's tier multiplier; once per order."""
    with joined(tenant):
        rules = queries.loyalty_settings()
        tier = Tier.objects.filter(name=member.tier).first() if member.tier else None
        multiplier = tier.earn_multiplier_pct if tier else 100
        points = paid_fen * rules.points_per_yuan * multiplier // (100 * 100)
        if points <= 0 and paid_fen <= 0:
            return None
        return change_points(tenant, member, points, Reason.EARN, ref=order_ref, amount_fen=paid_fen, rules=rules)


def reverse_for_refund(tenant: Tenant, member: Member, *, refund_ref: str, order_ref: str,
                       refunded_fen: int) -> PointsEntry | None:
    """Take back the points a refunded part of an order earned, as far as the balance allows."""
    with within(tenant):
        earned = PointsEntry.objects.filter(member=member, reason=Reason.EARN, ref=order_ref).first()
        if earned is None or earned.amount_fen <= 0:
            return None
        owed = earned.delta * min(refunded_fen, earned.amount_fen) // earned.amount_fen
        done = PointsEntry.objects.filter(member=member, reason=Reason.REFUND, ref=refund_ref).first()
        if done is not None:
            return done
        # Spent points cannot be taken back; the balance stops at zero and the note says so.
        Member.objects.select_for_update().filter(pk=member.pk).first()
        take = min(owed, _balance(member))
        note = "" if take == owed else f"owed {owed}, balance allowed {take}"
        return change_points(tenant, member, -take, Reason.REFUND, ref=refund_ref, amount_fen=-refunded_fen,
                             tier_points=-owed, note=note)


def adjust_points(tenant: Tenant, member: Member, delta: int, *, actor, note: str) -> PointsEntry:
    """A staff correction, with its reason in the ledger and the audit log."""
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": [_("请填写调整原因。")]})
    if delta == 0:
        raise ValidationError({"delta": [_("调整数量不能为 0。")]})
    with within(tenant):
        entry = change_points(tenant, member, delta, Reason.ADJUST, note=note, actor=actor)
        audit(tenant, "points.adjusted", actor=actor, target=f"member:{member.pk}", openid=member.openid,
              delta=delta, balance_after=entry.balance_after, note=note)
        return entry


def exchange_points_for_coupon(tenant: Tenant, member: Member, template_id: int, *,
                               idempotency_key: str = ""):
    """Spend points on a coupon: both happen or neither (no points lost on a sold-out coupon)."""
    with within(tenant):
        template = queries.get_template(template_id)
        if (template.channels and Channel.POINTS not in template.channels) or not template.points_cost:
            raise CouponError("not_exchangeable")
        with transaction.atomic():
            result = claim_coupon(tenant, template_id, member, channel=Channel.POINTS,
                                  idempotency_key=idempotency_key)
            if result.created:
                change_points(tenant, member, -template.points_cost, Reason.EXCHANGE, ref=result.coupon.code,
                              note=template.name)
        return result


# --- tiers ---------------------------------------------------------------------------------------

def tier_basis_value(member: Member, basis: str) -> int:
    rows = PointsEntry.objects.filter(member=member, reason__in=TIER_REASONS)
    field = "tier_points" if basis == LoyaltySettings.Basis.POINTS else "amount_fen"
    return int(rows.aggregate(total=Sum(field))["total"] or 0)


def evaluate_tier(tenant: Tenant, member: Member, rules: LoyaltySettings | None = None) -> str:
    """Put the member in the highest tier whose threshold they reach ("" below every tier)."""
    with joined(tenant):
        rules = rules or queries.loyalty_settings()
        value = tier_basis_value(member, rules.tier_basis)
        tier = Tier.objects.filter(threshold__lte=value).order_by("-threshold").first()
        name = tier.name if tier else ""
        if name != member.tier:
            previous = member.tier
            Member.objects.filter(pk=member.pk).update(tier=name)
            member.tier = name
            audit(tenant, "tier.changed", target=f"member:{member.pk}", previous=previous, tier=name,
                  basis=rules.tier_basis, value=value)
        return name


def save_loyalty_settings(tenant: Tenant, *, actor, points_per_yuan: int, tier_basis: str,
                          new_member_template_id: int | None, points_expire_months: int | None = None,
                          return_coupon_on_refund: str | None = None) -> LoyaltySettings:
    """Save the tenant's rules; the expiry and refund policy stay as they are when not given."""
    errors: dict[str, list[str]] = {}
    if tier_basis not in LoyaltySettings.Basis.values:
        errors["tier_basis"] = [_("请选择等级依据。")]
    if points_per_yuan < 0:
        errors["points_per_yuan"] = [_("积分规则不能为负数。")]
    if points_expire_months is not None and not 0 <= points_expire_months <= MAX_EXPIRE_MONTHS:
        errors["points_expire_months"] = [_("积分有效期须在 0 到 %(n)d 个月之间（0 表示永不过期）。")
                                          % {"n": MAX_EXPIRE_MONTHS}]
    if return_coupon_on_refund is not None and return_coupon_on_refund not in LoyaltySettings.CouponReturn.values:
        errors["return_coupon_on_refund"] = [_("请选择退款后是否退还优惠券。")]
    if errors:
        raise ValidationError(errors)
    with within(tenant):
        if new_member_template_id is not None:
            queries.get_template(new_member_template_id)
        rules = LoyaltySettings.objects.select_for_update().first() or LoyaltySettings(tenant=tenant)
        rules.points_per_yuan = points_per_yuan
        rules.tier_basis = tier_basis
        rules.new_member_template_id = new_member_template_id
        if points_expire_months is not None:
            rules.points_expire_months = points_expire_months
        if return_coupon_on_refund is not None:
            rules.return_coupon_on_refund = return_coupon_on_refund
        rules.save()
        audit(tenant, "loyalty.settings_updated", actor=actor, points_per_yuan=points_per_yuan,
              tier_basis=tier_basis, new_member_template=new_member_template_id,
              points_expire_months=rules.points_expire_months, return_coupon_on_refund=rules.return_coupon_on_refund)
        return rules


def save_tier(tenant: Tenant, *, actor, name: str, threshold: int, earn_multiplier_pct: int = 100,
              monthly_template_id: int | None = None, benefits: str = "", tier_id: int | None = None) -> Tier:
    """Create or edit a tier; members keep their tier name in sync when it is renamed."""
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("请填写等级名称。")]
    if threshold < 0:
        errors["threshold"] = [_("门槛不能为负数。")]
    if not 0 < earn_multiplier_pct <= 1000:
        errors["earn_multiplier_pct"] = [_("积分倍率须在 1% 到 1000% 之间。")]
    with within(tenant):
        tier = Tier.objects.select_for_update().get(pk=tier_id) if tier_id else Tier(tenant=tenant)
        clash = Tier.objects.exclude(pk=tier.pk)
        if name and clash.filter(name=name).exists():
            errors["name"] = [_("已有同名等级。")]
        if clash.filter(threshold=threshold).exists():
            errors["threshold"] = [_("已有等级使用这个门槛。")]
        if monthly_template_id is not None:
            queries.get_template(monthly_template_id)
        if errors:
            raise ValidationError(errors)
        old_name = tier.name
        tier.name, tier.threshold, tier.benefits = name, threshold, benefits
        tier.earn_multiplier_pct, tier.monthly_template_id = earn_multiplier_pct, monthly_template_id
        tier.save()
        if old_name and old_name != name:
            Member.objects.filter(tier=old_name).update(tier=name)
        audit(tenant, "tier.saved", actor=actor, target=f"tier:{tier.pk}", name=name, threshold=threshold,
              earn_multiplier_pct=earn_multiplier_pct, monthly_template=monthly_template_id)
        return tier


# --- expiry --------------------------------------------------------------------------------------

def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def expiry_cutoff(months: int, now: datetime) -> datetime:
    """Points credited before this instant have expired at ``now``.

    Points credited on a (Beijing) day last through the same day ``months`` months later, so on
    any day the oldest points still valid are those of the day ``months`` months before it.
    """
    zone = timezone.get_default_timezone()
    first_valid_day = months_before(timezone.localtime(now, zone).date(), months)
    return datetime.combine(first_valid_day, time.min, tzinfo=zone)


@dataclass(frozen=True)
class ExpiryChunk:
    members: int  # members with a balance looked at
    expired_members: int
    expired_points: int
    next_after: int | None  # where the next chunk starts (a member id); None when this was the last


def expire_points_chunk(tenant: Tenant, *, after_member_id: int = 0, now: datetime | None = None,
                        limit: int | None = None) -> ExpiryChunk:
    """Expire what is due for up to ``limit`` members with a balance, after ``after_member_id``.

    One unit of work (when called outside the tenant's context): the members' rows are locked
    first, so the ledger read next sees every change committed to them, and nothing changes them
    until this commits. A second run, concurrent or later, then finds nothing more due, and the
    ledger's unique (member, reason, ref), the ref being the first day still valid, backs that up.
    Five statements per chunk on PostgreSQL, whatever its size: the rule, the members, their locks,
    their ledger sums, the write.
    """
    now = now or timezone.now()
    limit = limit or EXPIRY_CHUNK
    with within(tenant):
        months = queries.loyalty_settings().points_expire_months
        if not months:
            return ExpiryChunk(0, 0, 0, None)
        cutoff = expiry_cutoff(months, now)
        ref = cutoff.date().isoformat()
        ids = list(Member.objects.filter(pk__gt=after_member_id, points__gt=0).order_by("pk")
                   .values_list("pk", flat=True)[:limit])
        if not ids:
            return ExpiryChunk(0, 0, 0, None)
        next_after = ids[-1] if len(ids) == limit else None
        balances = dict(Member.objects.select_for_update().filter(pk__in=ids, points__gt=0).order_by("pk")
                        .values_list("pk", "points"))
        flows = (
            PointsEntry.objects.filter(member_id__in=list(balances)).values("member_id").order_by()
            .annotate(credited=Sum("delta", filter=Q(delta__gt=0, created_at__lt=cutoff), default=0),
                      spent=Sum("delta", filter=Q(delta__lt=0), default=0))
        )
        due: dict[int, int] = {}
        for row in flows:
            left = row["credited"] + row["spent"]
            if left > 0:
                balance = balances[row["member_id"]]
                if left > balance:
                    # Only if the cached balance and the ledger disagree; the balance must not go negative.
                    logger.warning("tenant %s member %s: %d points due to expire, balance %d",
                                   tenant.pk, row["member_id"], left, balance)
                due[row["member_id"]] = min(left, balance)
        if not due:
            return ExpiryChunk(len(ids), 0, 0, next_after)
        _write_expiry(tenant, due, balances, ref)
        return ExpiryChunk(len(ids), len(due), sum(due.values()), next_after)


# The balances go down and their ledger rows go in with one statement: each row carries the balance
# its UPDATE left (expiry counts toward no tier: tier_points 0).
_EXPIRE_SQL = f"""
WITH due AS (
    SELECT * FROM unnest(%(members)s::bigint[], %(amounts)s::bigint[]) AS d(member_id, amount)
), taken AS (
    UPDATE {Member._meta.db_table} AS m SET points = m.points - due.amount
    FROM due WHERE m.tenant_id = %(tenant)s AND m.id = due.member_id
    RETURNING m.id, m.points, due.amount
)
INSERT INTO {PointsEntry._meta.db_table} (tenant_id, member_id, delta, balance_after, reason, ref, amount_fen,
    tier_points, note, actor_id, created_at)
SELECT %(tenant)s, id, -amount, points, %(reason)s, %(ref)s, 0, 0, '', NULL, %(now)s FROM taken
"""  # noqa: S608 - table names from the models, values as parameters


def _write_expiry(tenant: Tenant, due: dict[int, int], balances: dict[int, int], ref: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_EXPIRE_SQL, {"members": list(due), "amounts": list(due.values()), "tenant": tenant.pk,
                                         "reason": Reason.EXPIRE.value, "ref": ref, "now": timezone.now()})
            if cursor.rowcount != len(due):  # the rows are locked: none can have gone
                raise RuntimeError(f"expiry wrote {cursor.rowcount} of {len(due)} ledger rows")
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {Member._meta.db_table} SET points = points - %s WHERE tenant_id = %s AND id = %s",  # noqa: S608
            [(amount, tenant.pk, pk) for pk, amount in due.items()],
        )
    PointsEntry.objects.bulk_create([
        PointsEntry(member_id=pk, delta=-n, balance_after=balances[pk] - n, reason=Reason.EXPIRE, ref=ref,
                    tier_points=0)
        for pk, n in due.items()
    ])


def expire_points(tenant: Tenant, *, now: datetime | None = None, limit: int | None = None) -> ExpiryChunk:
    """Every chunk of the tenant, one after the other (each its own unit of work when called outside
    the tenant's context); the totals. The beat task runs the chunks as chained tasks instead."""
    now = now or timezone.now()
    members = expired_members = expired_points = 0
    after: int | None = 0
    while after is not None:
        chunk = expire_points_chunk(tenant, after_member_id=after, now=now, limit=limit)
        members += chunk.members
        expired_members += chunk.expired_members
        expired_points += chunk.expired_points
        after = chunk.next_after
    return ExpiryChunk(members, expired_members, expired_points, None)
