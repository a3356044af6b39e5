"""Points and tiers. The ledger is the truth; ``Member.points`` caches its running balance.

Every change is one conditional ``UPDATE … SET points = points + delta WHERE points + delta >= 0``
on the member row (which also serialises concurrent changes for that member) followed by the
ledger row carrying ``balance_after``; both commit or neither does. So the balance never goes
negative and always equals the sum of the ledger. A change keyed by ``ref`` (an order, a refund,
a coupon code) happens once: the unique (member, reason, ref) makes a retry a no-op.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from campaigns import queries
from campaigns.actions.coupons import claim_coupon
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import Channel, LoyaltySettings, PointsEntry, Tier
from campaigns.scope import within
from profiles.models import Member
from tenants.actions import audit
from tenants.context import require_tenant
from tenants.models import Tenant

Reason = PointsEntry.Reason
# Reasons that count toward tiers: what was earned by paying, net of what refunds took back.
TIER_REASONS = (Reason.EARN, Reason.REFUND)


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


def change_points(tenant: Tenant, member: Member, delta: int, reason: str, *, ref: str = "",
                  amount_fen: int = 0, tier_points: int | None = None, note: str = "", actor=None) -> PointsEntry:
    """One ledger change. Raises CouponError ``insufficient_points`` if it would go below zero."""
    if reason not in Reason.values:
        raise ValueError(f"unknown points reason {reason!r}")
    ref = (ref or "")[:64]
    if member.tenant_id != tenant.pk:
        raise NotFound(member.pk)
    with within(tenant):
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
            evaluate_tier(tenant, member)
        return entry


def _balance(member: Member) -> int:
    return int(Member.objects.filter(pk=member.pk).values_list("points", flat=True).first() or 0)


def earn_for_order(tenant: Tenant, member: Member, *, order_ref: str, paid_fen: int) -> PointsEntry | None:
    """Points for a paid order by the tenant's rule and the member's tier multiplier; once per order."""
    with within(tenant):
        rules = queries.loyalty_settings()
        tier = Tier.objects.filter(name=member.tier).first() if member.tier else None
        multiplier = tier.earn_multiplier_pct if tier else 100
        points = paid_fen * rules.points_per_yuan * multiplier // (100 * 100)
        if points <= 0 and paid_fen <= 0:
            return None
        return change_points(tenant, member, points, Reason.EARN, ref=order_ref, amount_fen=paid_fen)


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


def evaluate_tier(tenant: Tenant, member: Member) -> str:
    """Put the member in the highest tier whose threshold they reach ("" below every tier)."""
    with within(tenant):
        rules = queries.loyalty_settings()
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
                          new_member_template_id: int | None) -> LoyaltySettings:
    if tier_basis not in LoyaltySettings.Basis.values:
        raise ValidationError({"tier_basis": [_("请选择等级依据。")]})
    if points_per_yuan < 0:
        raise ValidationError({"points_per_yuan": [_("积分规则不能为负数。")]})
    with within(tenant):
        if new_member_template_id is not None:
            queries.get_template(new_member_template_id)
        rules = LoyaltySettings.objects.select_for_update().first() or LoyaltySettings(tenant=tenant)
        rules.points_per_yuan = points_per_yuan
        rules.tier_basis = tier_basis
        rules.new_member_template_id = new_member_template_id
        rules.save()
        audit(tenant, "loyalty.settings_updated", actor=actor, points_per_yuan=points_per_yuan,
              tier_basis=tier_basis, new_member_template=new_member_template_id)
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
