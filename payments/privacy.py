"""Orders held about a member, for the export and erasure of ``profiles.privacy``.

Orders are the merchant's accounting records and stay, pointing at the erased member's
tombstone. What identifies the person beyond that is the payer's openid that WeChat put in each
payment notification: erasure takes it out of the decrypted copy and drops the raw (encrypted)
body, which the merchant's APIv3 key could still open.
"""

from __future__ import annotations

from typing import Any

from payments.models import Order, PaymentNotification
from profiles.models import Member


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def export_orders(member: Member) -> list[dict[str, Any]]:
    return [
        {"out_trade_no": o.out_trade_no, "state": o.state, "subtotal_fen": o.subtotal_fen,
         "discount_fen": o.discount_fen, "payable_fen": o.payable_fen, "refunded_fen": o.refunded_fen,
         "created_at": _iso(o.created_at), "paid_at": _iso(o.paid_at),
         "lines": [{"sku": line.sku, "name": line.name, "qty": line.qty, "unit_price_fen": line.unit_price_fen}
                   for line in o.lines.all()]}
        for o in Order.objects.filter(member=member).prefetch_related("lines").order_by("created_at", "id")
    ]


def erase_orders(member: Member) -> None:
    orders = Order.objects.filter(member=member).values_list("pk", flat=True)
    for note in PaymentNotification.objects.filter(order_id__in=list(orders)):
        resource = dict(note.resource)
        resource.pop("payer", None)
        resource.pop("openid", None)
        note.resource = resource
        note.raw_body = ""
        note.save(update_fields=["resource", "raw_body"])


def register() -> None:
    from profiles.privacy import register_member_data

    register_member_data(Order, export=export_orders, erase=erase_orders, section="orders")
