"""What an order's payment, refund or closing changes beyond the order.

``on_paid`` runs from the fulfilment outbox (``payments.fulfilment``), exactly once per paid order;
the others run in the transaction of their transition. The purchase event is also deduplicated
by its id, and the campaigns functions are keyed by the order, so a repeat would change nothing.
"""

from __future__ import annotations

import logging

from django.db import transaction

from campaigns import actions as campaign_actions
from campaigns.exceptions import CouponError
from payments import signals
from payments.models import Order
from profiles.models import Event
from tenants.models import Tenant

logger = logging.getLogger("jingzhun.payments")


def purchase_event_id(order: Order) -> str:
    return f"order-paid:{order.out_trade_no}"


def on_paid(order: Order, tenant: Tenant) -> None:
    if order.coupon_id is not None:
        try:
            campaign_actions.consume_coupon(tenant, order.coupon_id, order.out_trade_no,
                                            discount_fen=order.discount_fen)
        except CouponError as exc:
            # The money is in: the payment stands, and a person looks at the coupon.
            logger.warning("order %s paid but its coupon could not be consumed: %s", order.out_trade_no, exc.code)
            order.needs_attention = True
            order.save(update_fields=["needs_attention", "updated_at"])
    campaign_actions.earn_for_order(tenant, order.member, order_ref=order.out_trade_no, paid_fen=order.payable_fen)
    lines = list(order.lines.all())
    Event.objects.bulk_create(
        [
            Event(
                event_id=purchase_event_id(order),
                member_id=order.member_id,
                kind=Event.Kind.PURCHASE,
                item_id=lines[0].item_id if len(lines) == 1 else None,
                amount_fen=order.payable_fen,
                ts=order.paid_at,
                props={
                    "out_trade_no": order.out_trade_no,
                    "items": [
                        {"sku": line.sku, "qty": line.qty, "unit_price_fen": line.unit_price_fen,
                         "amount_fen": line.amount_fen, "discount_fen": line.discount_fen}
                        for line in lines
                    ],
                    "discount_fen": order.discount_fen,
                    "coupon_id": order.coupon_id,
                },
            )
        ],
        ignore_conflicts=True,
    )
    payload = {
        "tenant_id": order.tenant_id,
        "order_id": order.pk,
        "out_trade_no": order.out_trade_no,
        "member_id": order.member_id,
        "payable_fen": order.payable_fen,
        "coupon_id": order.coupon_id,
    }
    transaction.on_commit(lambda: signals.order_paid.send_robust(sender=Order, **payload))


def on_refunded(order: Order, amount_fen: int, out_refund_no: str) -> None:
    """Points the refunded part earned go back. The coupon is not money: only a full refund may give
    it back, by the tenant's policy (``actions.settle_refund``)."""
    campaign_actions.reverse_for_refund(order.tenant, order.member, refund_ref=out_refund_no,
                                        order_ref=order.out_trade_no, refunded_fen=amount_fen)
    payload = {
        "tenant_id": order.tenant_id,
        "order_id": order.pk,
        "out_trade_no": order.out_trade_no,
        "member_id": order.member_id,
        "payable_fen": order.payable_fen,
        "coupon_id": order.coupon_id,
        "amount_fen": amount_fen,
    }
    transaction.on_commit(lambda: signals.order_refunded.send_robust(sender=Order, **payload))


def on_closed(order: Order) -> None:
    """An unpaid order closed: nothing held for it stays held."""
    if order.coupon_id is not None:
        campaign_actions.release_coupon(order.tenant, order.coupon_id, order.out_trade_no)
