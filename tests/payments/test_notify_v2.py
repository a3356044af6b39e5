"""WeChat Pay v2 notify: XML, MD5 and HMAC-SHA256, the XML reply, and the encrypted refund notify."""

from __future__ import annotations

import pytest

from payments.models import Order, OrderTransition, PaymentNotification, Refund
from tenants.context import tenant_context
from tests.payments.conftest import OPENID, V2_KEY, reload
from wechat import payv2

pytestmark = pytest.mark.django_db

SUCCESS = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"


def _fields(shop, order, **overrides):
    fields = {
        "appid": shop.appid,
        "mch_id": shop.mchid,
        "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "result_code": "SUCCESS",
        "return_code": "SUCCESS",
        "openid": OPENID,
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "CMC",
        "total_fee": str(order.payable_fen),
        "fee_type": "CNY",
        "cash_fee": str(order.payable_fen),
        "transaction_id": "4200000001" + order.out_trade_no[-18:],
        "out_trade_no": order.out_trade_no,
        "attach": "",  # empty: excluded from the signature
        "time_end": "20261128193456",
        "new_field_wechat_added": "included-in-signature",
    }
    fields.update(overrides)
    return fields


def _signed(fields, sign_type=payv2.MD5, key=V2_KEY, declare=False):
    fields = dict(fields)
    if declare:
        fields["sign_type"] = sign_type
    fields["sign"] = payv2.sign(fields, key, sign_type)
    return payv2.to_xml(fields).encode()


def _tampered(body):
    spoiled = body.replace(b"5600]]></total_fee>", b"5601]]></total_fee>")
    assert spoiled != body
    return spoiled


def _post(client, shop, body):
    return client.post(shop.url("v2"), data=body, content_type="text/xml")


def _set_sign_type(shop, order, sign_type):
    with tenant_context(shop.tenant):
        Order.objects.filter(pk=order.pk).update(v2_sign_type=sign_type)


def _notes(shop):
    with tenant_context(shop.tenant):
        return list(PaymentNotification.objects.values_list("channel", "outcome", "flag_reason", "attempts"))


def test_md5_notify_pays_and_replies_success(client, shop_a):
    order = shop_a.order()
    response = _post(client, shop_a, _signed(_fields(shop_a, order)))
    assert response.status_code == 200
    assert response.content.decode() == SUCCESS
    order = reload(shop_a, order)
    assert order.state == "paid"
    assert order.paid_at.isoformat() == "2026-11-28T11:34:56+00:00"
    assert _notes(shop_a) == [("v2", "applied", "", 1)]
    with tenant_context(shop_a.tenant):
        assert OrderTransition.objects.filter(order=order, to_state="paid", cause="notify_v2").count() == 1


@pytest.mark.parametrize("declare", [True, False])
def test_hmac_notify_for_an_hmac_order_with_or_without_sign_type(client, shop_a, declare):
    order = shop_a.order()
    _set_sign_type(shop_a, order, payv2.HMAC_SHA256)
    response = _post(client, shop_a, _signed(_fields(shop_a, order), payv2.HMAC_SHA256, declare=declare))
    assert response.content.decode() == SUCCESS
    assert reload(shop_a, order).state == "paid"


def test_md5_signed_notify_on_an_hmac_order_is_accepted(client, shop_a):
    order = shop_a.order()
    _set_sign_type(shop_a, order, payv2.HMAC_SHA256)
    assert _post(client, shop_a, _signed(_fields(shop_a, order))).content.decode() == SUCCESS
    assert reload(shop_a, order).state == "paid"


def test_hmac_without_sign_type_on_an_md5_order_is_refused(client, shop_a):
    order = shop_a.order()
    response = _post(client, shop_a, _signed(_fields(shop_a, order), payv2.HMAC_SHA256))
    assert "FAIL" in response.content.decode()
    assert reload(shop_a, order).state == "created"
    assert _notes(shop_a) == []


@pytest.mark.parametrize("spoil", ["wrong_key", "tampered", "no_sign", "xxe", "garbage"])
def test_bad_v2_notify_is_fail_and_nothing_happens(client, shop_a, spoil):
    order = shop_a.order()
    fields = _fields(shop_a, order)
    body = {
        "wrong_key": lambda: _signed(fields, key="x" * 32),
        "tampered": lambda: _tampered(_signed(fields)),
        "no_sign": lambda: payv2.to_xml(fields).encode(),
        "xxe": lambda: b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>',
        "garbage": lambda: b"not xml at all",
    }[spoil]()
    response = _post(client, shop_a, body)
    assert response.status_code == 200
    assert "<return_code><![CDATA[FAIL]]></return_code>" in response.content.decode()
    assert reload(shop_a, order).state == "created"
    assert _notes(shop_a) == []


def test_duplicate_v2_notify_is_success_once_applied(client, shop_a):
    order = shop_a.order()
    body = _signed(_fields(shop_a, order))
    assert _post(client, shop_a, body).content.decode() == SUCCESS
    assert _post(client, shop_a, body).content.decode() == SUCCESS
    assert _notes(shop_a) == [("v2", "applied", "", 2)]
    with tenant_context(shop_a.tenant):
        assert OrderTransition.objects.filter(order=order, to_state="paid").count() == 1


def test_wrong_amount_v2_is_recorded_flagged_not_applied(client, shop_a, shop_b):
    order = shop_a.order()
    order_b = shop_b.order()
    assert _post(client, shop_a, _signed(_fields(shop_a, order, total_fee="1"))).content.decode() == SUCCESS
    assert _post(client, shop_a, _signed(_fields(shop_a, order_b))).content.decode() == SUCCESS
    assert reload(shop_a, order).state == "created"
    assert reload(shop_b, order_b).state == "created"
    assert sorted(n[2] for n in _notes(shop_a)) == ["amount_mismatch", "unknown_order"]
    assert _notes(shop_b) == []


def _refund(shop, order, amount):
    with tenant_context(shop.tenant):
        locked = Order.objects.get(pk=order.pk)
        locked.state, locked.transaction_id = "paid", "4200000001" + order.out_trade_no[-18:]
        locked.save()
        return Refund.objects.create(order=locked, out_refund_no="RF" + order.out_trade_no[2:], amount_fen=amount,
                                     state=Refund.State.PROCESSING)


def _refund_xml(shop, refund, key=V2_KEY, status="SUCCESS", **outer):
    req_info = payv2.encrypt_refund_req_info({
        "transaction_id": "4200000001" + refund.order.out_trade_no[-18:],
        "out_trade_no": refund.order.out_trade_no,
        "refund_id": "50000000382019052709732678859",
        "out_refund_no": refund.out_refund_no,
        "total_fee": refund.order.payable_fen,
        "refund_fee": refund.amount_fen,
        "settlement_refund_fee": refund.amount_fen,
        "refund_status": status,
        "success_time": "2026-11-28 20:00:00",
        "refund_recv_accout": "支付用户的零钱",
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "API",
    }, key)
    fields = {"return_code": "SUCCESS", "appid": shop.appid, "mch_id": shop.mchid,
              "nonce_str": "TeqClE3i0mvn3DrK", "req_info": req_info, **outer}
    return payv2.to_xml(fields).encode()


def test_v2_refund_notify_completes_the_refund(client, shop_a):
    order = shop_a.order()
    refund = _refund(shop_a, order, 1000)
    response = _post(client, shop_a, _refund_xml(shop_a, refund))
    assert response.content.decode() == SUCCESS
    order = reload(shop_a, order)
    assert (order.state, order.refunded_fen) == ("partially_refunded", 1000)
    with tenant_context(shop_a.tenant):
        refund = Refund.objects.select_related("order").get(pk=refund.pk)
    assert (refund.state, refund.refund_id) == ("success", "50000000382019052709732678859")
    assert refund.succeeded_at.isoformat() == "2026-11-28T12:00:00+00:00"
    # Again: acknowledged, nothing more refunded.
    assert _post(client, shop_a, _refund_xml(shop_a, refund)).content.decode() == SUCCESS
    assert reload(shop_a, order).refunded_fen == 1000


@pytest.mark.parametrize("case", ["wrong_key", "not_base64", "wrong_mch"])
def test_v2_refund_notify_that_cannot_be_read_is_answered_fail(client, shop_a, case):
    order = shop_a.order()
    refund = _refund(shop_a, order, 1000)
    body = {
        "wrong_key": lambda: _refund_xml(shop_a, refund, key="k" * 32),
        "not_base64": lambda: _refund_xml(shop_a, refund).replace(b"<req_info><![CDATA[", b"<req_info><![CDATA[%%"),
        "wrong_mch": lambda: _refund_xml(shop_a, refund, mch_id="1900000002"),
    }[case]()
    response = _post(client, shop_a, body)
    assert response.status_code == 200
    assert "<return_code><![CDATA[FAIL]]></return_code>" in response.content.decode()
    assert reload(shop_a, order).refunded_fen == 0
    assert _notes(shop_a) == []
