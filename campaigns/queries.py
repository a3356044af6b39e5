"""Named reads of coupons, points and tiers. Missing and another tenant's raise the same NotFound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from campaigns import pricing
from campaigns.exceptions import NotFound
from campaigns.models import Channel, Coupon, CouponTemplate, GrantJob, LoyaltySettings, PointsEntry, Tier
from catalog.models import Item
from payments.models import Order
from profiles.models import Member
from tenants.context import require_tenant


def get_template(template_id: int | str, *, for_update: bool = False) -> CouponTemplate:
    """A template of the tenant in context."""
    try:
        qs = CouponTemplate.objects.select_for_update() if for_update else CouponTemplate.objects
        return qs.get(pk=int(template_id))
    except (CouponTemplate.DoesNotExist, ValueError, TypeError):
        raise NotFound(template_id) from None


def get_coupon(coupon_id: int | str, *, member: Member | None = None, for_update: bool = False) -> Coupon:
    qs = Coupon.objects.select_for_update() if for_update else Coupon.objects.select_related("template")
    if member is not None:
        qs = qs.filter(member=member)
    try:
        return qs.get(pk=int(coupon_id))
    except (Coupon.DoesNotExist, ValueError, TypeError):
        raise NotFound(coupon_id) from None


def get_coupon_by_code(code: str, *, member: Member | None = None) -> Coupon:
    """For orders: the coupon a member presents by code (another member's code is not found)."""
    qs = Coupon.objects.select_related("template").filter(code=(code or "").strip().upper())
    if member is not None:
        qs = qs.filter(member=member)
    coupon = qs.first()
    if coupon is None:
        raise NotFound(code)
    return coupon


def get_member(member_id: int | str) -> Member:
    try:
        return Member.objects.get(pk=int(member_id), erased_at__isnull=True)
    except (Member.DoesNotExist, ValueError, TypeError):
        raise NotFound(member_id) from None


def get_grant_job(job_id: int | str) -> GrantJob:
    try:
        return GrantJob.objects.select_related("template").get(pk=int(job_id))
    except (GrantJob.DoesNotExist, ValueError, TypeError):
        raise NotFound(job_id) from None


def is_claimable_now(template: CouponTemplate, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    if template.state != CouponTemplate.State.ACTIVE:
        return False
    if template.valid_until is not None and now >= template.valid_until:
        return False
    return True


def claimable_templates(now: datetime | None = None) -> list[CouponTemplate]:
    """What the Mini Program may offer for self-claim (sold-out ones included, flagged by ``remaining``)."""
    now = now or timezone.now()
    active = (
        CouponTemplate.objects.filter(state=CouponTemplate.State.ACTIVE)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .order_by("-created_at", "-id")
    )
    # A handful of rows per tenant; the channel list is JSON, filtered here the same on every database.
    return [t for t in active if not t.channels or Channel.SELF_CLAIM in t.channels]


def member_coupons(member: Member, *, state: str | None = None) -> QuerySet[Coupon]:
    qs = Coupon.objects.filter(member=member).select_related("template")
    if state:
        qs = qs.filter(state=state)
    return qs.order_by("-claimed_at", "-id")


def terms_of(template: CouponTemplate) -> pricing.Terms:
    return pricing.Terms(
        kind=template.kind,
        value=template.value,
        threshold_fen=template.threshold_fen,
        cap_fen=template.cap_fen,
        item_ids=frozenset(template.item_ids or ()),
        category_ids=frozenset(template.category_ids or ()),
        excluded_item_ids=frozenset(template.excluded_item_ids or ()),
        excluded_category_ids=frozenset(template.excluded_category_ids or ()),
        exchange_item_id=template.exchange_item_id,
    )


def price_lines(sku_qty: Sequence[tuple[str, int]]) -> tuple[list[pricing.Line], list[str]]:
    """Catalogue prices for ``(sku, qty)`` pairs; unknown or inactive skus come back separately."""
    wanted = {sku for sku, _ in sku_qty}
    items = {i.sku: i for i in Item.objects.filter(sku__in=wanted, active=True)}
    lines, unknown = [], []
    for sku, qty in sku_qty:
        item = items.get(sku)
        if item is None:
            unknown.append(sku)
            continue
        lines.append(pricing.Line(item.pk, item.category_id, qty, item.price_fen))
    return lines, unknown


def quote_coupon(coupon: Coupon, lines: Sequence[pricing.Line], now: datetime | None = None) -> pricing.Quote:
    """What ``coupon`` takes off ``lines``, and whether the member can use it now."""
    now = now or timezone.now()
    if coupon.state != Coupon.State.UNUSED:
        return pricing.Quote(False, 0, 0, f"coupon_{coupon.state}")
    if coupon.valid_from > now:
        return pricing.Quote(False, 0, 0, "not_yet_valid")
    if coupon.valid_until is not None and coupon.valid_until <= now:
        return pricing.Quote(False, 0, 0, "coupon_expired")
    return pricing.quote(lines, terms_of(coupon.template))


def template_funnel(template_ids: Sequence[int] | None = None) -> dict[int, dict[str, int]]:
    """Coupons per template and state: the funnel's claimed / used / expired / revoked."""
    qs = Coupon.objects.all()
    if template_ids is not None:
        qs = qs.filter(template_id__in=list(template_ids))
    funnel: dict[int, dict[str, int]] = {}
    for row in qs.values("template_id", "state").annotate(n=Count("id")).order_by():
        funnel.setdefault(row["template_id"], {s: 0 for s in Coupon.State.values})[row["state"]] = row["n"]
    return funnel


def discount_cost(template_ids: Sequence[int]) -> dict[int, int]:
    """Total discount given on used coupons, per template."""
    rows = (Coupon.objects.filter(template_id__in=list(template_ids), state=Coupon.State.USED)
            .values("template_id").annotate(total=Sum("discount_fen")).order_by())
    return {r["template_id"]: int(r["total"] or 0) for r in rows}


# Orders whose money came in; a refunded one still counts, at what is left of it (possibly 0).
REVENUE_STATES = (Order.State.PAID, Order.State.PARTIALLY_REFUNDED, Order.State.REFUNDED)


@dataclass(frozen=True)
class TemplateRevenue:
    orders: int = 0
    paid_fen: int = 0
    refunded_fen: int = 0  # refunds that succeeded (money back with the payer); pending ones are not in it

    @property
    def revenue_fen(self) -> int:
        return self.paid_fen - self.refunded_fen


def template_revenue(template_ids: Sequence[int]) -> dict[int, TemplateRevenue]:
    """Per template, the paid orders that used one of its coupons: how many, what they paid and what
    succeeded refunds gave back, in fen. One grouped query for any number of templates."""
    rows = (
        Order.objects.filter(coupon__template_id__in=list(template_ids), state__in=REVENUE_STATES)
        .values("coupon__template_id").order_by()
        .annotate(orders=Count("id"), paid=Sum("payable_fen"), refunded=Sum("refunded_fen"))
    )
    return {r["coupon__template_id"]: TemplateRevenue(r["orders"], int(r["paid"] or 0), int(r["refunded"] or 0))
            for r in rows}


def expiring_coupons(within: timedelta, now: datetime | None = None) -> QuerySet[Coupon]:
    """Unused coupons expiring within ``within`` that have not been reminded yet (the reminder hook)."""
    now = now or timezone.now()
    return Coupon.objects.filter(state=Coupon.State.UNUSED, reminded_at__isnull=True,
                                 valid_until__gt=now, valid_until__lte=now + within)


def loyalty_settings() -> LoyaltySettings:
    """The tenant's rules; defaults (not saved) when the merchant has not set any."""
    found = LoyaltySettings.objects.select_related("new_member_template").first()
    return found or LoyaltySettings(tenant=require_tenant())


def tiers() -> list[Tier]:
    return list(Tier.objects.select_related("monthly_template").order_by("threshold"))


def ledger(member: Member, limit: int = 200) -> QuerySet[PointsEntry]:
    return PointsEntry.objects.filter(member=member).select_related("actor").order_by("-id")[:limit]
