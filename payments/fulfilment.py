"""The order-paid outbox: a payment's effects, applied exactly once, after the payment commits.

The notify path only marks the order paid (and the paid transition records it) in its own short
transaction; the effects (coupon consumed, points earned, purchase event, ``order_paid``) follow
in ``fulfil``, which locks the order and applies them only while ``fulfilled_at`` is empty, then
sets it in the same transaction. It is sent on commit, and the reconciliation scan re-sends it for
any paid order left unfulfilled (a lost message, a crashed worker), so nothing is lost or doubled.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from payments import effects
from payments.models import Order
from tenants import resolvers
from tenants.context import tenant_context
from tenants.models import Tenant

logger = logging.getLogger("jingzhun.payments")

PAID_STATES = (Order.State.PAID, Order.State.PARTIALLY_REFUNDED, Order.State.REFUNDED)


def fulfil(tenant: Tenant, order_pk: int) -> bool:
    """Apply the paid order's effects if they are still owed; True if this call applied them."""
    with tenant_context(tenant):
        order = Order.objects.select_for_update().filter(pk=order_pk).first()
        if order is None or order.state not in PAID_STATES or order.fulfilled_at is not None:
            return False
        effects.on_paid(order, tenant)
        order.fulfilled_at = timezone.now()
        order.save(update_fields=["fulfilled_at"])
        return True


@shared_task(acks_late=True, max_retries=5, default_retry_delay=30)
def fulfil_order(tenant_id: int, order_id: int) -> bool:
    # A plain task (not a tenant task): money work runs for suspended tenants too.
    tenant = resolvers.tenant_by_id(int(tenant_id))
    if tenant is None:
        return False
    return fulfil(tenant, order_id)


def schedule(order: Order) -> None:
    """Once the transaction that paid ``order`` commits, send its fulfilment."""
    tenant_id, order_id = order.tenant_id, order.pk
    transaction.on_commit(lambda: fulfil_order.delay(tenant_id, order_id))
