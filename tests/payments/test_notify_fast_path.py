"""The v3 notify's fast path: one statement settles and records a fitting payment; the rest falls back.

The guarantees themselves (record before ack, exactly once in parallel, 5xx when not recorded) are
proved in test_notify_v3.py on both databases; these tests pin what makes the path cheap and the
cases where it must step aside for the general checks.
"""

from __future__ import annotations

import pytest
from django.db import connection, connections
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from payments import fulfilment
from payments.models import Order, OrderTransition, PaymentNotification
from profiles.models import Event
from tenants.context import tenant_context
from tests.fixtures import postgres_only
from tests.payments.conftest import post_notify, reload
from wechat.notify import sign_notification_body

pytestmark = pytest.mark.django_db


def _resent(shop, headers, body):
    retry = sign_notification_body(shop.platform_pem, headers["Wechatpay-Serial"], body)
    retry.pop("Content-Type")
    return retry


def _records(shop):
    with tenant_context(shop.tenant):
        return sorted(PaymentNotification.objects.values_list("notify_id", "outcome", "flag_reason", "attempts"))


def _paid_transitions(shop, order):
    with tenant_context(shop.tenant):
        return list(OrderTransition.objects.filter(order_id=order.pk, to_state="paid")
                    .values_list("from_state", "cause", "details"))


@pytest.fixture
def broker_mode():
    """Celery as in production (messages to a broker) for the duration of a test."""
    conf = fulfilment.fulfil_order.app.conf
    conf.task_always_eager = False
    yield
    conf.task_always_eager = True


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_fitting_notify_and_its_repeat_are_one_round_trip_each(client, shop_a, broker_mode, monkeypatch):
    monkeypatch.setattr(fulfilment._sender, "put", lambda tenant_id, order_id: None)
    warm_up, order = shop_a.order(client_order_id="c-0"), shop_a.order()
    url = shop_a.url()
    headers, body = shop_a.notification(shop_a.resource(warm_up), notify_id="EV-0")
    assert client.post(url, data=body, content_type="application/json", headers=headers).status_code == 204
    headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-1")
    with CaptureQueriesContext(connection) as first:
        response = client.post(url, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 204
    with CaptureQueriesContext(connection) as repeat:
        response = client.post(url, data=body, content_type="application/json", headers=_resent(shop_a, headers, body))
    assert response.status_code == 204

    for captured in (first, repeat):
        # BEGIN, the tenant setting, the settle-and-record statement and COMMIT, sent together.
        [pipeline] = [q["sql"] for q in captured.captured_queries]
        parts = [p.split()[0].upper() for p in pipeline.split("; ")]
        assert (parts[:3], parts[-1]) == (["BEGIN", "SELECT", "WITH"], "COMMIT")
        assert f"set_config('app.tenant_id', '{shop_a.tenant.pk}', true)" in pipeline
    order = reload(shop_a, order)
    assert (order.state, order.transaction_id) == ("paid", shop_a.resource(order)["transaction_id"])
    assert _paid_transitions(shop_a, order) == [
        ("created", "notify_v3", {"transaction_id": order.transaction_id})]
    assert _records(shop_a) == [("EV-0", "applied", "", 1), ("EV-1", "applied", "", 2)]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_notify_view_spends_no_round_trip_on_a_connection_health_check(client, shop_a, monkeypatch):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order))
    url = shop_a.url()
    checks = []
    wrapper = connections["default"]
    monkeypatch.setattr(wrapper, "is_usable", lambda: checks.append(1) or True)
    enabled = wrapper.health_check_enabled
    wrapper.health_check_enabled, wrapper.health_check_done = True, False
    try:
        response = client.post(url, data=body, content_type="application/json", headers=headers)
    finally:
        wrapper.health_check_enabled = enabled

    assert response.status_code == 204
    assert checks == []
    assert reload(shop_a, order).state == "paid"


def test_a_second_payment_for_a_paid_order_is_flagged_not_applied(client, shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-1")
    assert post_notify(client, shop_a, headers, body).status_code == 204
    paid_with = reload(shop_a, order).transaction_id
    headers, body = shop_a.notification(shop_a.resource(order, transaction_id="4200000000999999999999999999"),
                                        notify_id="EV-2")

    response = post_notify(client, shop_a, headers, body)

    assert response.status_code == 400
    assert response.json() == {"code": "FAIL", "message": "not applied: paid_twice"}
    order = reload(shop_a, order)
    assert (order.state, order.transaction_id, order.needs_attention) == ("paid", paid_with, True)
    assert len(_paid_transitions(shop_a, order)) == 1
    assert _records(shop_a) == [("EV-1", "applied", "", 1), ("EV-2", "flagged", "paid_twice", 1)]


def test_a_late_repeat_for_a_partly_refunded_order_changes_nothing(client, shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-1")
    assert post_notify(client, shop_a, headers, body).status_code == 204
    with tenant_context(shop_a.tenant):
        Order.objects.filter(pk=order.pk).update(state="partially_refunded", refunded_fen=1000)
    headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-LATE")

    assert post_notify(client, shop_a, headers, body).status_code == 204

    order = reload(shop_a, order)
    assert (order.state, order.refunded_fen) == ("partially_refunded", 1000)
    assert len(_paid_transitions(shop_a, order)) == 1
    assert _records(shop_a) == [("EV-1", "applied", "", 1), ("EV-LATE", "no_change", "", 1)]
    with tenant_context(shop_a.tenant):
        assert Event.objects.filter(kind="purchase").count() == 1


def test_the_same_order_number_in_another_tenant_is_never_touched(client, shop_a, shop_b):
    order_a = shop_a.order()
    order_b = shop_b.order()
    with tenant_context(shop_b.tenant):
        Order.objects.filter(pk=order_b.pk).update(out_trade_no=order_a.out_trade_no)
    headers, body = shop_a.notification(shop_a.resource(order_a), notify_id="EV-1")

    assert post_notify(client, shop_a, headers, body).status_code == 204

    assert reload(shop_a, order_a).state == "paid"
    order_b = reload(shop_b, order_b)
    assert (order_b.state, order_b.transaction_id, order_b.fulfilled_at) == ("created", "", None)
    assert _paid_transitions(shop_b, order_b) == []
    assert _records(shop_b) == []
    with tenant_context(shop_b.tenant):
        assert Event.objects.count() == 0


# --- the fulfilment's batched sending --------------------------------------------------------------


@postgres_only
def test_with_a_broker_the_notify_hands_the_paid_order_to_the_sender_after_commit(client, shop_a, shop_b,
                                                                                   broker_mode, monkeypatch):
    queued = []
    monkeypatch.setattr(fulfilment._sender, "put", lambda tenant_id, order_id: queued.append((tenant_id, order_id)))
    orders = [(shop_a, shop_a.order()), (shop_b, shop_b.order())]
    for shop, order in orders:
        headers, body = shop.notification(shop.resource(order))
        before = list(queued)
        with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
            assert client.post(shop.url(), data=body, content_type="application/json",
                               headers=headers).status_code == 204
        assert queued == before
        for callback in callbacks:
            callback()

    assert queued == [(shop.tenant.pk, order.pk) for shop, order in orders]
    assert reload(shop_a, orders[0][1]).fulfilled_at is None  # the workers do that


def test_the_sender_publishes_one_message_per_tenant_for_a_burst(monkeypatch):
    sent = []
    monkeypatch.setattr(fulfilment.fulfil_orders, "delay", lambda tenant_id, ids: sent.append((tenant_id, ids)))
    sender = fulfilment._BatchSender()
    for tenant_id, order_id in ((1, 10), (2, 20), (1, 11), (1, 12), (2, 21)):
        sender.put(tenant_id, order_id)
    sender.stop()

    assert sorted(sent) == [(1, [10, 11, 12]), (2, [20, 21])]


def test_a_failed_publish_is_logged_and_the_sender_keeps_going(monkeypatch, caplog):
    sent = []

    def flaky(tenant_id, ids):
        if tenant_id == 1:
            raise ConnectionError("broker down")
        sent.append((tenant_id, ids))

    monkeypatch.setattr(fulfilment.fulfil_orders, "delay", flaky)
    monkeypatch.setattr(fulfilment._BatchSender, "LINGER_S", 0)
    sender = fulfilment._BatchSender()
    sender.put(1, 10)
    sender.put(2, 20)
    sender.stop()

    assert sent == [(2, [20])]
    assert "fulfilment of 1 orders of tenant 1 not sent" in caplog.text


def test_fulfil_orders_applies_each_paid_order_once(client, shop_a, shop_b):
    orders = [shop_a.order(client_order_id=f"c-{i}") for i in range(3)]
    other = shop_b.order()
    for i, order in enumerate(orders[:2]):
        headers, body = shop_a.notification(shop_a.resource(order), notify_id=f"EV-{i}")
        with TestCase.captureOnCommitCallbacks(execute=False):  # the message is "lost"
            assert client.post(shop_a.url(), data=body, content_type="application/json",
                               headers=headers).status_code == 204

    ids = [o.pk for o in orders] + [other.pk]
    assert fulfilment.fulfil_orders(shop_a.tenant.pk, ids) == 2  # the unpaid one and B's are not A's to fulfil
    assert fulfilment.fulfil_orders(shop_a.tenant.pk, ids) == 0
    assert fulfilment.fulfil_orders(987654, ids) == 0
    with tenant_context(shop_a.tenant):
        assert Event.objects.filter(kind="purchase").count() == 2
    assert reload(shop_b, other).fulfilled_at is None
