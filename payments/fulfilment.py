"""The order-paid outbox: a payment's effects, applied exactly once, after the payment commits.

The notify path only marks the order paid (and the paid transition records it) in its own short
transaction; the effects (coupon consumed, points earned, purchase event, ``order_paid``) follow
in ``fulfil``, which locks the order and applies them only while ``fulfilled_at`` is empty, then
sets it in the same transaction. It is sent on commit, and the reconciliation scan re-sends it for
any paid order left unfulfilled (a lost message, a crashed worker), so nothing is lost or doubled.

Notify bursts send theirs in batches (``schedule_for(..., batched=True)``): the request only hands
the order id to a per-process sender thread, which waits a moment for more and publishes one
message per tenant. A message lost with its process is one the scan re-sends.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections import defaultdict

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


@shared_task(acks_late=True, max_retries=5, default_retry_delay=30)
def fulfil_orders(tenant_id: int, order_ids: list[int]) -> int:
    """``fulfil_order`` for several orders of one tenant; a redelivery re-applies nothing."""
    tenant = resolvers.tenant_by_id(int(tenant_id))
    if tenant is None:
        return 0
    return sum(fulfil(tenant, int(pk)) for pk in order_ids)


def schedule(order: Order) -> None:
    """Once the transaction that paid ``order`` commits, send its fulfilment."""
    schedule_for(order.tenant_id, order.pk)


def schedule_for(tenant_id: int, order_id: int, *, batched: bool = False) -> None:
    """Once the current transaction commits, send the order's fulfilment (or queue it for a batch)."""
    if batched and not fulfil_order.app.conf.task_always_eager:
        transaction.on_commit(lambda: _sender.put(tenant_id, order_id))
    else:
        transaction.on_commit(lambda: fulfil_order.delay(tenant_id, order_id))


class _BatchSender:
    """One thread per process publishing queued order ids as one ``fulfil_orders`` message per tenant.

    Publishing through Celery costs about a millisecond of CPU; at hundreds of notifies a second
    that was a sizeable share of each one. Waiting ``LINGER_S`` after the first id lets a burst
    share a message, and the notify's answer never waits for the broker.
    """

    LINGER_S = 0.1
    MAX_BATCH = 500
    _STOP = object()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def put(self, tenant_id: int, order_id: int) -> None:
        if self._pid != os.getpid():
            self._start()
        self._queue.put((tenant_id, order_id))

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked child inherits neither the parent's thread nor the ids it still has to send.
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, args=(self._queue,), name="fulfilment-sender",
                                            daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def _run(self, ids: queue.SimpleQueue) -> None:
        stopping = False
        while not stopping:
            batch = [ids.get()]
            if batch[0] is not self._STOP:
                time.sleep(self.LINGER_S)
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(ids.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is self._STOP for item in batch)
            self._send([item for item in batch if item is not self._STOP])

    @staticmethod
    def _send(batch: list[tuple[int, int]]) -> None:
        by_tenant: dict[int, list[int]] = defaultdict(list)
        for tenant_id, order_id in batch:
            by_tenant[tenant_id].append(order_id)
        for tenant_id, order_ids in by_tenant.items():
            try:
                fulfil_orders.delay(tenant_id, order_ids)
            except Exception:
                # The orders stay paid and unfulfilled: the reconciliation scan sends them again.
                logger.exception("fulfilment of %d orders of tenant %s not sent", len(order_ids), tenant_id)

    def stop(self, timeout: float = 5) -> None:
        """Send what is queued (at exit: a clean worker shutdown loses nothing)."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._queue.put(self._STOP)
        thread.join(timeout)


_sender = _BatchSender()
atexit.register(_sender.stop)
