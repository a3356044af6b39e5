"""Refunds (never more than paid, completed by the refund notify) and reconciliation with WeChat."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from payments import actions, fulfilment, tasks
from payments.exceptions import PaymentsError
from payments.models import BillCheck, Order, OrderTransition, PaymentNotification, Refund
from profiles.models import Member
from tenants.context import tenant_context
from tests.payments.conftest import auth, reload
from wechat.sandbox import pay as sandbox_pay

pytestmark = pytest.mark.django_db


def _paid(client, shop, client_order_id="c-1", lines=(("LATTE", 2),)):
    order = shop.order(client_order_id, lines)
    assert client.post(f"/api/v1/orders/{order.out_trade_no}/pay", **auth(shop.member)).status_code == 200
    with TestCase.captureOnCommitCallbacks(execute=True):
        _, attempt = sandbox_pay.simulate_payment(shop.mchid, order.out_trade_no)
    assert attempt.status == 204
    order = reload(shop, order)
    assert order.state == "paid"
    return order


def _refund(shop, order, amount, reason="顾客退货"):
    refund = actions.request_refund(shop.tenant, order.pk, amount_fen=amount, reason=reason)
    return actions.submit_refund(shop.tenant, refund.pk)


def _points(shop):
    with tenant_context(shop.tenant):
        return Member.objects.get(pk=shop.member.pk).points


def test_partial_then_full_refund_through_the_refund_notify(client, paying_a):
    order = _paid(client, paying_a)
    assert _points(paying_a) == 56

    refund = _refund(paying_a, order, 1600)
    assert refund.state == "processing"
    assert reload(paying_a, order).state == "paid"  # nothing moves until WeChat says SUCCESS
    _, attempt = sandbox_pay.simulate_refund(paying_a.mchid, refund.out_refund_no)
    assert attempt.status == 204
    order = reload(paying_a, order)
    assert (order.state, order.refunded_fen) == ("partially_refunded", 1600)
    assert _points(paying_a) == 40

    second = _refund(paying_a, order, 4000)
    sandbox_pay.simulate_refund(paying_a.mchid, second.out_refund_no)
    sandbox_pay.simulate_refund(paying_a.mchid, second.out_refund_no)  # told again, under a new notify id
    order = reload(paying_a, order)
    assert (order.state, order.refunded_fen) == ("refunded", 5600)
    assert _points(paying_a) == 0
    with tenant_context(paying_a.tenant):
        assert list(OrderTransition.objects.filter(order=order, cause="refund").values_list("to_state", flat=True)) \
            == ["partially_refunded", "refunded"]
        assert sorted(PaymentNotification.objects.filter(event_type="REFUND.SUCCESS")
                      .values_list("outcome", "attempts")) == [("applied", 1), ("applied", 1), ("no_change", 1)]


def test_refund_more_than_paid_is_refused_and_nothing_is_sent(client, paying_a, sandbox):
    order = _paid(client, paying_a)
    calls_before = len(sandbox.calls)
    with pytest.raises(PaymentsError) as caught:
        actions.request_refund(paying_a.tenant, order.pk, amount_fen=5601)
    assert caught.value.code == "refund_exceeds_paid"
    assert caught.value.details == {"available_fen": 5600}
    first = actions.request_refund(paying_a.tenant, order.pk, amount_fen=5000)
    # A pending refund reserves its amount: the next may take only what is left.
    with pytest.raises(PaymentsError) as caught:
        actions.request_refund(paying_a.tenant, order.pk, amount_fen=601)
    assert caught.value.details == {"available_fen": 600}
    assert len(sandbox.calls) == calls_before
    with tenant_context(paying_a.tenant):
        assert list(Refund.objects.values_list("pk", flat=True)) == [first.pk]
    for bad in (0, -1, True, "100"):
        with pytest.raises(PaymentsError):
            actions.request_refund(paying_a.tenant, order.pk, amount_fen=bad)


def test_a_closed_refund_frees_its_amount(client, paying_a):
    order = _paid(client, paying_a)
    refund = _refund(paying_a, order, 5600)
    sandbox_pay.simulate_refund(paying_a.mchid, refund.out_refund_no, status="CLOSED")
    with tenant_context(paying_a.tenant):
        assert Refund.objects.get(pk=refund.pk).state == "closed"
    order = reload(paying_a, order)
    assert (order.state, order.refunded_fen, order.needs_attention) == ("paid", 0, True)
    assert _refund(paying_a, order, 5600).state == "processing"


def test_unpaid_order_cannot_be_refunded(paying_a):
    order = paying_a.order()
    with pytest.raises(PaymentsError) as caught:
        actions.request_refund(paying_a.tenant, order.pk, amount_fen=100)
    assert caught.value.code == "not_refundable"


def test_refund_notify_for_an_unknown_refund_is_flagged(client, paying_a):
    order = _paid(client, paying_a)
    resource = {"mchid": paying_a.mchid, "out_trade_no": order.out_trade_no, "transaction_id": order.transaction_id,
                "out_refund_no": "RFNOTOURS000001", "refund_id": "5000001", "refund_status": "SUCCESS",
                "success_time": "2026-11-28T20:00:00+08:00", "amount": {"total": 5600, "refund": 5600}}
    headers, body = paying_a.notification(resource, serial=paying_a.creds.public_key_id,
                                          event_type="REFUND.SUCCESS", original_type="refund")
    response = client.post(paying_a.url(), data=body, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert reload(paying_a, order).refunded_fen == 0
    with tenant_context(paying_a.tenant):
        assert PaymentNotification.objects.get(event_type="REFUND.SUCCESS").flag_reason == "unknown_refund"


# --- reconciliation ----------------------------------------------------------------------------


def _age(shop, order, **fields):
    with tenant_context(shop.tenant):
        Order.objects.filter(pk=order.pk).update(**fields)


def test_missed_notify_is_recovered_by_query(client, paying_a, monkeypatch, django_capture_on_commit_callbacks):
    order = paying_a.order()
    client.post(f"/api/v1/orders/{order.out_trade_no}/pay", **auth(paying_a.member))
    # The customer pays but the notify never reaches us.
    monkeypatch.setattr(sandbox_pay, "post_notification",
                        lambda url, headers, body: sandbox_pay.NotifyAttempt(url, None, "ConnectionError"))
    sandbox_pay.simulate_payment(paying_a.mchid, order.out_trade_no)
    assert reload(paying_a, order).state == "paying"

    _age(paying_a, order, updated_at=timezone.now() - timedelta(minutes=6))
    with django_capture_on_commit_callbacks(execute=True):
        found = tasks.scan_orders.delay(paying_a.tenant.pk).get()
    assert found == {"expired": 0, "stale": 1, "refunds": 0, "unfulfilled": 0}
    order = reload(paying_a, order)
    assert order.state == "paid"
    with tenant_context(paying_a.tenant):
        assert OrderTransition.objects.get(order=order, to_state="paid").cause == "query"


def test_expired_orders_are_closed_at_wechat_and_here(client, paying_a, sandbox, django_capture_on_commit_callbacks):
    never_paid = paying_a.order("c-1")
    prepaid = paying_a.order("c-2")
    client.post(f"/api/v1/orders/{prepaid.out_trade_no}/pay", **auth(paying_a.member))
    fresh = paying_a.order("c-3")
    for order in (never_paid, prepaid):
        _age(paying_a, order, expires_at=timezone.now() - timedelta(minutes=1))

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.scan_orders.delay(paying_a.tenant.pk).get()["expired"] == 2
    assert [reload(paying_a, o).state for o in (never_paid, prepaid, fresh)] == ["closed", "closed", "created"]
    closes = [c for c in sandbox.calls if c[1].endswith("/close")]
    assert [(c[1].rsplit("/", 2)[-2], c[2]) for c in closes] == [(prepaid.out_trade_no, 204)]
    assert sandbox_pay.transaction_view(sandbox_pay.get_transaction(paying_a.mchid, prepaid.out_trade_no))[
        "trade_state"] == "CLOSED"


def test_expired_order_paid_at_wechat_is_paid_not_closed(client, paying_a, monkeypatch):
    order = paying_a.order()
    client.post(f"/api/v1/orders/{order.out_trade_no}/pay", **auth(paying_a.member))
    monkeypatch.setattr(sandbox_pay, "post_notification",
                        lambda url, headers, body: sandbox_pay.NotifyAttempt(url, None, "Timeout"))
    sandbox_pay.simulate_payment(paying_a.mchid, order.out_trade_no)
    _age(paying_a, order, expires_at=timezone.now() - timedelta(minutes=1))
    assert actions.close_order(paying_a.tenant, order.pk).state == "paid"


def test_scan_sees_only_its_tenant(client, paying_a, paying_b, django_capture_on_commit_callbacks):
    order_b = paying_b.order()
    _age(paying_b, order_b, expires_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.scan_orders.delay(paying_a.tenant.pk).get() == {"expired": 0, "stale": 0, "refunds": 0,
                                                                     "unfulfilled": 0}
    assert reload(paying_b, order_b).state == "created"


BILL = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注\n"
    "`2026-11-27 10:00:00,`wxa0000000000000a1,`1900000001,`0,`,`{tx1},`{no1},`oX,`JSAPI,`SUCCESS,`OTHERS,`CNY,"
    "`56.00,`0.00,`0,`0,`0.00,`0.00,`,`,`Latte,`,`0.34,`0.60%,`56.00,`0.00,`\n"
    "`2026-11-27 11:00:00,`wxa0000000000000a1,`1900000001,`0,`,`4200000009,`JZLOST000001,`oY,`JSAPI,`SUCCESS,`OTHERS,`CNY,"
    "`12.00,`0.00,`0,`0,`0.00,`0.00,`,`,`Bagel,`,`0.07,`0.60%,`12.00,`0.00,`\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n"
    "`2,`68.00,`0.00,`0.00,`0.41,`68.00,`0.00\n"
)


def test_daily_bill_differences_are_stored_for_the_console(client, paying_a, monkeypatch):
    paid = _paid(client, paying_a)
    other = _paid(client, paying_a, "c-2", (("BAGEL", 1),))
    day = date(2026, 11, 27)
    for order in (paid, other):
        _age(paying_a, order, paid_at=timezone.make_aware(timezone.datetime(2026, 11, 27, 10, 0)))
    text = BILL.format(tx1=paid.transaction_id, no1=paid.out_trade_no)
    monkeypatch.setattr("wechat.payv3.PayV3Client.trade_bill",
                        lambda self, bill_date, bill_type="ALL": {"download_url": "https://x/bill", "hash_value": "h"})
    monkeypatch.setattr("wechat.payv3.PayV3Client.download_bill",
                        lambda self, url, expected_sha1=None: text.encode())

    assert tasks.check_trade_bill.delay(paying_a.tenant.pk, day.isoformat()).get() == 2
    with tenant_context(paying_a.tenant):
        check = BillCheck.objects.get(bill_date=day)
    assert (check.wechat_count, check.ours_count, check.error) == (2, 2, "")
    assert check.differences == [
        {"kind": "missing_here", "out_trade_no": "JZLOST000001", "transaction_id": "4200000009", "wechat_fen": 1200},
        {"kind": "missing_at_wechat", "out_trade_no": other.out_trade_no, "ours_fen": 1500},
    ]
    # A day already checked cleanly is not downloaded again by the hourly beat.
    with tenant_context(paying_a.tenant):
        BillCheck.objects.filter(pk=check.pk).update(differences=[])
    assert tasks.check_trade_bill.delay(paying_a.tenant.pk, day.isoformat()).get() == 0


def test_a_lost_fulfilment_is_sent_again_by_the_scan_and_applies_once(client, paying_a,
                                                                       django_capture_on_commit_callbacks):
    order = paying_a.order()
    client.post(f"/api/v1/orders/{order.out_trade_no}/pay", **auth(paying_a.member))
    # Paid, but the fulfilment message is lost (the on-commit callbacks never run here).
    sandbox_pay.simulate_payment(paying_a.mchid, order.out_trade_no)
    order = reload(paying_a, order)
    assert (order.state, order.fulfilled_at, _points(paying_a)) == ("paid", None, 0)
    _age(paying_a, order, paid_at=timezone.now() - timedelta(minutes=3))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            tasks.scan_orders.delay(paying_a.tenant.pk).get()
    order = reload(paying_a, order)
    assert order.fulfilled_at is not None
    assert _points(paying_a) == 56
    with tenant_context(paying_a.tenant):
        from profiles.models import Event

        assert Event.objects.filter(kind="purchase").count() == 1
    assert fulfilment.fulfil(paying_a.tenant, order.pk) is False


def test_member_export_and_erase_cover_orders(client, paying_a, paying_b):
    from profiles.privacy import erase_sections, export_sections

    order = _paid(client, paying_a)
    order_b = _paid(client, paying_b)
    with tenant_context(paying_a.tenant):
        exported = export_sections(paying_a.member)["orders"]
        assert [(o["out_trade_no"], o["state"], o["payable_fen"]) for o in exported] == [
            (order.out_trade_no, "paid", 5600)]
        erase_sections(paying_a.member)
        note = PaymentNotification.objects.get(order=order)
        assert (note.raw_body, "payer" in note.resource) == ("", False)
        assert Order.objects.get(pk=order.pk).state == "paid"  # kept for the merchant's accounts
    with tenant_context(paying_b.tenant):
        assert PaymentNotification.objects.get(order=order_b).resource["payer"]["openid"]
