"""Reconciliation with WeChat Pay: missed notifies, expired orders, refunds in flight, the daily bill.

The per-tenant scans are tenant tasks (database only). The per-order work talks to WeChat, so it
runs as plain tasks taking ``(tenant_id, id)`` whose actions open their own short units of work:
a tenant task's body is one transaction, and a WeChat call must never sit inside one.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from celery import shared_task
from django.utils import timezone

from payments import actions, fulfilment
from payments.exceptions import PaymentsError
from payments.models import BillCheck, Order, Refund
from payments.pay_results import BEIJING
from tenants import resolvers
from tenants.context import tenant_context
from tenants.tasks import enqueue_on_commit, fan_out, tenant_task
from wechat.errors import WeChatError

logger = logging.getLogger("jingzhun.payments")

# A notify normally arrives within seconds; after this long we ask WeChat ourselves.
QUERY_PAYING_AFTER = timedelta(minutes=5)
QUERY_REFUND_AFTER = timedelta(minutes=10)
# Fulfilment is sent on commit; only one still owed after this long was lost on the way.
FULFIL_AFTER = timedelta(minutes=2)
BATCH = 500

# No retry loops of their own: the 5-minute scan re-sends whatever is still pending, so a WeChat
# outage costs one scan interval, and an eager run (the demo, a console button) never raises.
OPTIONS = {"acks_late": True}


@shared_task
def reconcile_everywhere() -> int:
    return fan_out(scan_orders)


@shared_task
def check_bills_everywhere(day: str | None = None) -> int:
    """Yesterday's bills (Beijing calendar); WeChat has them ready from about 10:00."""
    if day is None:
        day = (datetime.now(BEIJING).date() - timedelta(days=1)).isoformat()
    return fan_out(check_trade_bill, day)


@tenant_task(run_when_suspended=True)
def scan_orders(tenant_id: int) -> dict[str, int]:
    """Find what needs WeChat's word and enqueue one task each (after this transaction commits)."""
    now = timezone.now()
    expired = list(Order.objects.filter(state__in=(Order.State.CREATED, Order.State.PAYING), expires_at__lte=now)
                   .order_by("expires_at").values_list("pk", flat=True)[:BATCH])
    stale = list(Order.objects.filter(state=Order.State.PAYING, expires_at__gt=now,
                                      updated_at__lte=now - QUERY_PAYING_AFTER)
                 .order_by("updated_at").values_list("pk", flat=True)[:BATCH])
    unfulfilled = list(Order.objects.filter(state__in=fulfilment.PAID_STATES, fulfilled_at__isnull=True,
                                            paid_at__lte=now - FULFIL_AFTER)
                       .order_by("paid_at").values_list("pk", flat=True)[:BATCH])
    refunds = list(Refund.objects.filter(state__in=(Refund.State.REQUESTED, Refund.State.PROCESSING),
                                         updated_at__lte=now - QUERY_REFUND_AFTER)
                   .order_by("updated_at").values_list("pk", flat=True)[:BATCH])
    for pk in expired:
        enqueue_on_commit(close_expired_order, tenant_id, pk)
    for pk in stale:
        enqueue_on_commit(query_order, tenant_id, pk)
    for pk in refunds:
        enqueue_on_commit(query_refund, tenant_id, pk)
    for pk in unfulfilled:
        enqueue_on_commit(fulfilment.fulfil_order, tenant_id, pk)
    return {"expired": len(expired), "stale": len(stale), "refunds": len(refunds), "unfulfilled": len(unfulfilled)}


def _tenant(tenant_id: int):
    tenant = resolvers.tenant_by_id(int(tenant_id))
    if tenant is None:
        logger.info("payments task for a tenant that is gone (%s)", tenant_id)
    return tenant


def _wechat_step(tenant_id: int, step, object_id: int) -> str:
    """Run one action that talks to WeChat; WeChat's and our refusals become a code, never a retry
    storm: the 5-minute scan picks up whatever is still pending."""
    tenant = _tenant(tenant_id)
    if tenant is None:
        return ""
    try:
        return step(tenant, object_id)
    except PaymentsError as exc:
        return exc.code
    except WeChatError as exc:
        logger.warning("payments task for tenant %s: WeChat said %s", tenant_id, exc)
        return "wechat_error"


@shared_task(**OPTIONS)
def query_order(tenant_id: int, order_id: int) -> str:
    return _wechat_step(tenant_id, actions.sync_payment, order_id)


@shared_task(**OPTIONS)
def close_expired_order(tenant_id: int, order_id: int) -> str:
    return _wechat_step(tenant_id, lambda t, pk: actions.close_order(t, pk).state, order_id)


@shared_task(**OPTIONS)
def submit_refund(tenant_id: int, refund_id: int) -> str:
    return _wechat_step(tenant_id, lambda t, pk: actions.submit_refund(t, pk).state, refund_id)


@shared_task(**OPTIONS)
def query_refund(tenant_id: int, refund_id: int) -> str:
    return _wechat_step(tenant_id, actions.sync_refund, refund_id)


@shared_task(**OPTIONS)
def check_trade_bill(tenant_id: int, day: str) -> int:
    tenant = _tenant(tenant_id)
    if tenant is None or resolvers.pay_credentials_for(tenant) is None:
        return 0
    with tenant_context(tenant):
        if BillCheck.objects.filter(bill_date=date.fromisoformat(day), error="").exists():
            return 0
    try:
        return len(actions.check_trade_bill(tenant, date.fromisoformat(day)).differences)
    except (PaymentsError, WeChatError):
        return 0
