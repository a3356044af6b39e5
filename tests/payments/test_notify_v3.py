"""WeChat Pay v3 notify: verified, recorded before the answer, applied exactly once, never across tenants."""

from __future__ import annotations

import json
import time

import pytest
from django.db import OperationalError

from payments import signals
from payments.models import Order, OrderTransition, PaymentNotification
from profiles.models import Event
from tenants import actions as tenant_actions
from tenants.context import tenant_context
from tests.fixtures import postgres_only
from tests.payments.conftest import CERT_SERIAL, post_notifies_at_once, post_notify, reload
from wechat.notify import sign_notification_body

pytestmark = pytest.mark.django_db


def _state(shop, order):
    order = reload(shop, order)
    with tenant_context(shop.tenant):
        transitions = list(OrderTransition.objects.filter(order=order).values_list("from_state", "to_state", "cause"))
        notes = list(PaymentNotification.objects.values_list("outcome", "flag_reason", "attempts"))
        events = Event.objects.filter(kind="purchase").count()
    return order, transitions, notes, events


def test_good_notify_pays_the_order_once_with_its_effects(client, shop_a):
    order = shop_a.order()
    received = []
    signals.order_paid.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t-paid")
    try:
        headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-1")
        response = post_notify(client, shop_a, headers, body)
    finally:
        signals.order_paid.disconnect(dispatch_uid="t-paid")

    assert response.status_code == 204
    assert response.content == b""
    order, transitions, notes, events = _state(shop_a, order)
    assert order.state == "paid"
    assert order.transaction_id == shop_a.resource(order)["transaction_id"]
    assert order.paid_at.isoformat() == "2026-11-28T11:34:56+00:00"
    assert transitions == [("", "created", "api"), ("created", "paid", "notify_v3")]
    assert notes == [("applied", "", 1)]
    assert events == 1
    with tenant_context(shop_a.tenant):
        event = Event.objects.get(kind="purchase")
        stored = PaymentNotification.objects.get()
    assert (event.member_id, event.amount_fen, event.props["items"][0]["sku"]) == (shop_a.member.pk, 5600, "LATTE")
    assert stored.raw_body == body.decode()
    assert stored.resource["out_trade_no"] == order.out_trade_no
    assert stored.order_id == order.pk
    assert order.fulfilled_at is not None
    assert [(r["out_trade_no"], r["payable_fen"]) for r in received] == [(order.out_trade_no, 5600)]


def test_a_retry_is_acknowledged_and_changes_nothing(client, shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-1")
    assert post_notify(client, shop_a, headers, body).status_code == 204
    # WeChat re-signs the same body with a fresh timestamp and nonce.
    retry = sign_notification_body(shop_a.platform_pem, headers["Wechatpay-Serial"], body)
    retry.pop("Content-Type")
    assert post_notify(client, shop_a, retry, body).status_code == 204

    order, transitions, notes, events = _state(shop_a, order)
    assert order.state == "paid"
    assert transitions == [("", "created", "api"), ("created", "paid", "notify_v3")]
    assert notes == [("applied", "", 2)]
    assert events == 1


def test_same_payment_under_another_notify_id_is_no_change(client, shop_a):
    order = shop_a.order()
    for notify_id in ("EV-1", "EV-2"):
        headers, body = shop_a.notification(shop_a.resource(order), notify_id=notify_id)
        assert post_notify(client, shop_a, headers, body).status_code == 204
    order, transitions, notes, events = _state(shop_a, order)
    assert len(transitions) == 2
    assert sorted(notes) == [("applied", "", 1), ("no_change", "", 1)]
    assert events == 1


def test_platform_certificate_serial_also_verifies(client, shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order), serial=CERT_SERIAL.lower())
    assert post_notify(client, shop_a, headers, body).status_code == 204
    assert reload(shop_a, order).state == "paid"


def _tamper_body(shop, headers, body):
    return headers, body.replace(b'"event_type":"TRANSACTION.SUCCESS"', b'"event_type":"TRANSACTION.SUCCESS" ')


def _wrong_signature(shop, headers, body):
    headers = dict(headers)
    other = sign_notification_body(shop.platform_pem, headers["Wechatpay-Serial"], body + b"x")
    headers["Wechatpay-Signature"] = other["Wechatpay-Signature"]
    return headers, body


def _unknown_serial(shop, headers, body):
    return {**headers, "Wechatpay-Serial": "PUB_KEY_ID_0114232134912410000000000000XXXX"}, body


def _stale(shop, headers, body):
    resigned = sign_notification_body(shop.platform_pem, headers["Wechatpay-Serial"], body,
                                      timestamp=int(time.time()) - 301)
    resigned.pop("Content-Type")
    return resigned, body


def _probe(shop, headers, body):
    return {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]}, body


def _missing_header(shop, headers, body):
    return {k: v for k, v in headers.items() if k != "Wechatpay-Nonce"}, body


@pytest.mark.parametrize("spoil", [_tamper_body, _wrong_signature, _unknown_serial, _stale, _probe, _missing_header])
def test_unverifiable_notify_is_401_and_nothing_happens(client, shop_a, spoil):
    order = shop_a.order()
    headers, body = spoil(shop_a, *shop_a.notification(shop_a.resource(order)))
    response = post_notify(client, shop_a, headers, body)

    assert response.status_code == 401
    assert response.json()["code"] == "FAIL"
    order, transitions, notes, events = _state(shop_a, order)
    assert order.state == "created"
    assert len(transitions) == 1
    assert notes == []
    assert events == 0


def test_undecryptable_resource_is_400_and_nothing_happens(client, shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order), apiv3_key="X" * 32)
    response = post_notify(client, shop_a, headers, body)
    assert response.status_code == 400
    order, transitions, notes, events = _state(shop_a, order)
    assert (order.state, notes, events) == ("created", [], 0)


def test_unknown_token_is_404(client, shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order))
    response = client.post("/pay/wechat/v3/not-a-token/", data=body, content_type="application/json",
                           headers=headers)
    assert response.status_code == 404
    assert reload(shop_a, order).state == "created"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"amount": {"total": 1}}, "amount_mismatch"),
        ({"amount": {"currency": "USD"}}, "currency_mismatch"),
        ({"mchid": "1900000002"}, "mchid_mismatch"),
        ({"appid": "wxb0000000000000b1"}, "appid_mismatch"),
        ({"trade_state": "NOTPAY"}, "not_success"),
    ],
)
def test_authentic_but_unfitting_notify_is_recorded_flagged_and_not_applied(client, shop_a, overrides, reason):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order, **overrides))
    response = post_notify(client, shop_a, headers, body)

    assert response.status_code == 400
    assert response.json() == {"code": "FAIL", "message": f"not applied: {reason}"}
    order, transitions, notes, events = _state(shop_a, order)
    assert order.state == "created"
    assert order.transaction_id == ""
    assert len(transitions) == 1
    assert notes == [("flagged", reason, 1)]
    assert events == 0
    # A retry of the same notification gets the same answer and stays one record.
    retry = sign_notification_body(shop_a.platform_pem, headers["Wechatpay-Serial"], body)
    retry.pop("Content-Type")
    assert post_notify(client, shop_a, retry, body).status_code == 400
    assert _state(shop_a, order)[2] == [("flagged", reason, 2)]


def test_another_tenants_out_trade_no_is_unknown_here_and_untouched_there(client, shop_a, shop_b):
    order_b = shop_b.order()
    # Everything right for shop A except the order number, which belongs to shop B.
    resource = shop_a.resource(order_b, mchid=shop_a.mchid, appid=shop_a.appid)
    headers, body = shop_a.notification(resource)
    response = post_notify(client, shop_a, headers, body)

    assert response.status_code == 400
    with tenant_context(shop_a.tenant):
        assert list(PaymentNotification.objects.values_list("outcome", "flag_reason")) == [("flagged", "unknown_order")]
    order_b, transitions_b, notes_b, events_b = _state(shop_b, order_b)
    assert (order_b.state, len(transitions_b), notes_b, events_b) == ("created", 1, [], 0)


def test_shop_bs_notification_sent_to_shop_as_url_is_not_applied_anywhere(client, shop_a, shop_b):
    order_b = shop_b.order()
    headers, body = shop_b.notification(shop_b.resource(order_b))
    response = post_notify(client, shop_a, headers, body)

    assert response.status_code == 400
    with tenant_context(shop_a.tenant):
        assert list(PaymentNotification.objects.values_list("flag_reason", flat=True)) == ["mchid_mismatch"]
    assert _state(shop_b, order_b)[0].state == "created"
    assert _state(shop_b, order_b)[2] == []


def test_notify_for_a_closed_order_is_recorded_and_flagged_for_a_human(client, shop_a):
    from payments.actions import close_order

    order = shop_a.order()
    close_order(shop_a.tenant, order.pk)
    headers, body = shop_a.notification(shop_a.resource(order))
    response = post_notify(client, shop_a, headers, body)

    assert response.status_code == 400
    order, transitions, notes, events = _state(shop_a, order)
    assert order.state == "closed"
    assert order.needs_attention is True
    assert transitions[-1] == ("created", "closed", "expiry")
    assert notes == [("flagged", "order_closed", 1)]
    assert events == 0


def test_suspended_tenant_still_records_and_applies(client, shop_a):
    order = shop_a.order()
    tenant_actions.set_tenant_status(shop_a.tenant, "suspended")
    headers, body = shop_a.notification(shop_a.resource(order))
    assert post_notify(client, shop_a, headers, body).status_code == 204
    assert reload(shop_a, order).state == "paid"


def test_database_unavailable_while_recording_is_503_and_nothing_half_done(client, shop_a, monkeypatch):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order))

    def down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("payments.notify._insert", down)
    response = post_notify(client, shop_a, headers, body)
    assert response.status_code == 503
    assert response.json()["code"] == "FAIL"
    monkeypatch.undo()
    order, transitions, notes, events = _state(shop_a, order)
    assert (order.state, len(transitions), notes, events) == ("created", 1, [], 0)


def test_failure_after_recording_rolls_back_the_record_too(client, shop_a, monkeypatch):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order))

    def broken(*args, **kwargs):
        raise OperationalError("connection lost mid-transaction")

    # Inside the unit of work, once the order has moved (on PostgreSQL's one-statement path, once the
    # notification is recorded too).
    monkeypatch.setattr("payments.fulfilment.schedule_for", broken)
    assert post_notify(client, shop_a, headers, body).status_code == 503
    monkeypatch.undo()
    order, transitions, notes, events = _state(shop_a, order)
    assert (order.state, len(transitions), notes, events) == ("created", 1, [], 0)
    # WeChat's retry then goes through.
    retry = sign_notification_body(shop_a.platform_pem, headers["Wechatpay-Serial"], body)
    retry.pop("Content-Type")
    assert post_notify(client, shop_a, retry, body).status_code == 204
    assert _state(shop_a, order)[0].state == "paid"


def test_get_is_refused(client, shop_a):
    assert client.get(shop_a.url()).status_code == 405


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_deliveries_apply_once_and_all_get_2xx(shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-PARALLEL")

    def resigned():
        retry = sign_notification_body(shop_a.platform_pem, headers["Wechatpay-Serial"], body)
        retry.pop("Content-Type")
        return retry

    statuses = post_notifies_at_once(shop_a, [(resigned(), body) for _ in range(10)])

    assert sorted(statuses) == [204] * 10
    order, transitions, notes, events = _state(shop_a, order)
    assert order.state == "paid"
    assert [t for t in transitions if t[1] == "paid"] == [("created", "paid", "notify_v3")]
    assert notes == [("applied", "", 10)]
    assert events == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_parallel_deliveries_with_distinct_ids_still_apply_once(shop_a):
    order = shop_a.order()
    prepared = [shop_a.notification(shop_a.resource(order), notify_id=f"EV-{i}") for i in range(6)]
    statuses = post_notifies_at_once(shop_a, prepared)

    assert sorted(statuses) == [204] * 6
    order, transitions, notes, events = _state(shop_a, order)
    assert len([t for t in transitions if t[1] == "paid"]) == 1
    assert sorted(n[0] for n in notes) == ["applied"] + ["no_change"] * 5
    assert events == 1


def test_stored_resource_is_the_decrypted_content(client, shop_a):
    order = shop_a.order()
    resource = shop_a.resource(order)
    headers, body = shop_a.notification(resource)
    post_notify(client, shop_a, headers, body)
    with tenant_context(shop_a.tenant):
        stored = PaymentNotification.objects.get()
    assert stored.resource == json.loads(json.dumps(resource))
    assert "ciphertext" in stored.raw_body and order.out_trade_no not in stored.raw_body


def test_a_flagged_notification_that_fits_on_retry_is_applied_and_recorded_so(client, shop_a):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order), notify_id="EV-LATE")
    with tenant_context(shop_a.tenant):
        Order.objects.filter(pk=order.pk).update(payable_fen=1)  # the order did not match at first
    assert post_notify(client, shop_a, headers, body).status_code == 400
    with tenant_context(shop_a.tenant):
        Order.objects.filter(pk=order.pk).update(payable_fen=5600)
    retry = sign_notification_body(shop_a.platform_pem, headers["Wechatpay-Serial"], body)
    retry.pop("Content-Type")
    assert post_notify(client, shop_a, retry, body).status_code == 204
    order, transitions, notes, events = _state(shop_a, order)
    assert (order.state, notes, events) == ("paid", [("applied", "", 2)], 1)
    assert order.needs_attention is False
    assert post_notify(client, shop_a, retry, body).status_code == 204
