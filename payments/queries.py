"""Named reads of orders, notifications and refunds, for the tenant in context.

Missing and another tenant's (or, for a member, another member's) raise the same OrderNotFound.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet

from payments.exceptions import OrderNotFound
from payments.models import BillCheck, Order, PaymentNotification, Refund
from payments.pay_results import BEIJING


def get_order(out_trade_no: str, *, for_update: bool = False) -> Order:
    qs = Order.objects.select_for_update() if for_update else Order.objects
    order = qs.filter(out_trade_no=out_trade_no).first()
    if order is None:
        raise OrderNotFound(out_trade_no)
    return order


def get_order_by_pk(pk: int | str, *, for_update: bool = False) -> Order:
    qs = Order.objects.select_for_update() if for_update else Order.objects
    try:
        return qs.get(pk=int(pk))
    except (Order.DoesNotExist, ValueError, TypeError):
        raise OrderNotFound(pk) from None


def get_member_order(member_id: int, out_trade_no: str) -> Order:
    order = Order.objects.filter(member_id=member_id, out_trade_no=out_trade_no).prefetch_related("lines").first()
    if order is None:
        raise OrderNotFound(out_trade_no)
    return order


def reserved_refund_fen(order: Order) -> int:
    return sum(Refund.objects.filter(order=order, state__in=Refund.RESERVING).values_list("amount_fen", flat=True))


def beijing_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=BEIJING)
    return start, start + timedelta(days=1)


def filter_orders(*, state: str = "", day_from: date | None = None, day_to: date | None = None,
                  member: str = "", coupon: str = "", campaign: str = "", attention: bool = False) -> QuerySet[Order]:
    """The console's order list; days are Beijing calendar days, inclusive."""
    qs = Order.objects.select_related("member", "coupon").order_by("-created_at", "-id")
    if state:
        qs = qs.filter(state=state)
    if day_from:
        qs = qs.filter(created_at__gte=beijing_day_bounds(day_from)[0])
    if day_to:
        qs = qs.filter(created_at__lt=beijing_day_bounds(day_to)[1])
    if member:
        qs = qs.filter(member__openid=member) if not member.isdigit() else qs.filter(member_id=int(member))
    if coupon:
        qs = qs.filter(coupon__code=coupon) if not coupon.isdigit() else qs.filter(coupon__template_id=int(coupon))
    if campaign:
        qs = qs.filter(coupon__campaign_ref=campaign)
    if attention:
        qs = qs.filter(needs_attention=True)
    return qs


def order_notifications(order: Order) -> QuerySet[PaymentNotification]:
    return PaymentNotification.objects.filter(order=order).order_by("received_at", "id")


def flagged_notifications() -> QuerySet[PaymentNotification]:
    return PaymentNotification.objects.filter(
        outcome=PaymentNotification.Outcome.FLAGGED, resolved_at__isnull=True
    ).order_by("-received_at")


def recent_bill_checks(limit: int = 30) -> QuerySet[BillCheck]:
    return BillCheck.objects.order_by("-bill_date")[:limit]
