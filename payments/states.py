"""The order state machine: one function per transition, each checked and recorded with its cause.

created → paying → paid → partially_refunded → refunded; created/paying → closed. A payment that
WeChat reports for a ``created`` order (the prepay answer got lost on the way back) is accepted too.

Callers hold the order row locked (``select_for_update``) inside a transaction; these functions
only check, change and record. Effects beyond the order (coupon, points, events) are the actions'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from payments.models import Order, OrderTransition

State = Order.State
Cause = OrderTransition.Cause


class IllegalTransition(Exception):  # noqa: N818 - reads as what it is
    def __init__(self, order: Order, to_state: str):
        super().__init__(f"order {order.out_trade_no}: {order.state} → {to_state} is not allowed")
        self.order = order
        self.from_state = order.state
        self.to_state = to_state


def _move(order: Order, allowed: tuple[str, ...], to_state: str, cause: str, *, actor=None,
          fields: tuple[str, ...] = (), details: dict[str, Any] | None = None) -> OrderTransition:
    if order.state not in allowed:
        raise IllegalTransition(order, to_state)
    from_state = order.state
    order.state = to_state
    order.save(update_fields=["state", "updated_at", *fields])
    return OrderTransition.objects.create(order=order, from_state=from_state, to_state=to_state, cause=cause,
                                          actor=actor, details=details or {})


def start_paying(order: Order, *, prepay_id: str, prepay_expires_at: datetime, cause: str = Cause.API,
                 actor=None) -> OrderTransition:
    order.prepay_id = prepay_id
    order.prepay_expires_at = prepay_expires_at
    return _move(order, (State.CREATED,), State.PAYING, cause, actor=actor,
                 fields=("prepay_id", "prepay_expires_at"))


def mark_paid(order: Order, *, transaction_id: str, paid_at: datetime, cause: str,
              details: dict[str, Any] | None = None) -> OrderTransition:
    order.transaction_id = transaction_id
    order.paid_at = paid_at
    return _move(order, (State.CREATED, State.PAYING), State.PAID, cause,
                 fields=("transaction_id", "paid_at"), details={"transaction_id": transaction_id, **(details or {})})


def close(order: Order, *, cause: str, actor=None, details: dict[str, Any] | None = None) -> OrderTransition:
    order.closed_at = timezone.now()
    return _move(order, (State.CREATED, State.PAYING), State.CLOSED, cause, actor=actor,
                 fields=("closed_at",), details=details)


def refund(order: Order, *, amount_fen: int, out_refund_no: str, actor=None) -> OrderTransition:
    """Money went back to the payer: partially, or up to everything that was paid."""
    if amount_fen <= 0 or amount_fen > order.payable_fen - order.refunded_fen:
        raise IllegalTransition(order, "refunded")
    order.refunded_fen += amount_fen
    to_state = State.REFUNDED if order.refunded_fen == order.payable_fen else State.PARTIALLY_REFUNDED
    return _move(order, (State.PAID, State.PARTIALLY_REFUNDED), to_state, Cause.REFUND, actor=actor,
                 fields=("refunded_fen",), details={"out_refund_no": out_refund_no, "amount_fen": amount_fen})
