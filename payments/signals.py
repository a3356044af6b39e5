"""Signals of the order-paid path, sent after the transaction that changed the order commits.

Listeners (campaign attribution, reports) join here instead of in the notify code. A signal sent
on commit can be lost if the process dies between commit and send; the durable record is the
``OrderTransition`` row with ``to_state="paid"`` (or ``refunded``/``partially_refunded``), written
in the same transaction as the change, which a listener can replay from.

``order_paid``: ``sender=Order``, ``tenant_id``, ``order_id``, ``out_trade_no``, ``member_id``,
``payable_fen``, ``coupon_id``. ``order_refunded``: the same plus ``amount_fen``.
"""

from __future__ import annotations

from django.dispatch import Signal

order_paid = Signal()
order_refunded = Signal()
