from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from tests.wechat import urls as test_urls
from wechat import payv3
from wechat.errors import WeChatPayError, WeChatUnavailable
from wechat.payv3 import PayV3Client, build_authorization
from wechat.sandbox import pay as sandbox_pay
from wechat.sandbox import signing
from wechat.sandbox.platform import CERT_SERIAL, PUBLIC_KEY_ID, _platform_key, platform_key
from wechat.testing import generate_private_key_pem, public_key_pem

OPENID = "oAlice000000000000000000000"


@pytest.fixture
def pay_client(merchant, transport) -> PayV3Client:
    return PayV3Client(merchant.creds)


def _prepay(pay_client, notify_url, out_trade_no="JZ20240608000001", total=1200, **kwargs):
    return pay_client.jsapi_prepay(out_trade_no, "精准咖啡 拿铁", total, OPENID, notify_url, **kwargs)


def test_prepay_is_idempotent_for_identical_parameters(pay_client, notify_url):
    prepay_id = _prepay(pay_client, notify_url, attach="tenant=1")
    assert prepay_id.startswith("wx")
    assert _prepay(pay_client, notify_url, attach="tenant=1") == prepay_id
    with pytest.raises(WeChatPayError) as err:
        _prepay(pay_client, notify_url, total=1300, attach="tenant=1")
    assert (err.value.status, err.value.code) == (403, "OUT_TRADE_NO_USED")


def test_requests_carry_the_documented_headers(pay_client, notify_url, monkeypatch):
    seen = {}

    def capture(request):
        seen.update(request.headers)
        return signing.authenticate(request)

    monkeypatch.setattr("wechat.sandbox.pay_views.authenticate", capture)
    _prepay(pay_client, notify_url)
    assert seen["Accept"] == "application/json"
    assert seen["Content-Type"] == "application/json"
    assert seen["User-Agent"].startswith("Jingzhun/")
    assert seen["Wechatpay-Serial"] == PUBLIC_KEY_ID
    assert seen["Authorization"].startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",')


def test_out_trade_no_with_pipe_and_star_signs_and_routes(pay_client, notify_url):
    _prepay(pay_client, notify_url, out_trade_no="JZ|2024*0001")
    assert pay_client.query_by_out_trade_no("JZ|2024*0001")["out_trade_no"] == "JZ|2024*0001"


def test_time_expire_is_sent_as_rfc3339(pay_client, notify_url):
    expire = datetime.now(UTC) + timedelta(minutes=30)
    _prepay(pay_client, notify_url, time_expire=expire)
    assert pay_client.query_by_out_trade_no("JZ20240608000001")["trade_state"] == "NOTPAY"
    with pytest.raises(ValueError):
        _prepay(pay_client, notify_url, out_trade_no="JZ20240608000002", time_expire=datetime(2030, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"out_trade_no": "abc"}, "/out_trade_no"),
        ({"out_trade_no": "JZ 2024 0001"}, "/out_trade_no"),
        ({"total": 0}, "/amount/total"),
        ({"notify_url": "https://example.com/notify?tenant=1"}, "/notify_url"),
    ],
)
def test_prepay_parameters_are_validated(pay_client, notify_url, kwargs, field):
    params = {"out_trade_no": "JZ20240608000001", "total": 1200, "notify_url": notify_url, **kwargs}
    with pytest.raises(WeChatPayError) as err:
        pay_client.jsapi_prepay(params["out_trade_no"], "d", params["total"], OPENID, params["notify_url"])
    assert (err.value.status, err.value.code) == (400, "PARAM_ERROR")


def test_wrong_appid_for_the_merchant(merchant, transport, notify_url):
    client = PayV3Client(replace(merchant.creds, appid="wx_other_app_00001"))
    with pytest.raises(WeChatPayError) as err:
        _prepay(client, notify_url)
    assert err.value.code == "APPID_MCHID_NOT_MATCH"


def test_a_request_signed_with_another_key_is_sign_error(merchant, transport, notify_url):
    impostor = PayV3Client(replace(merchant.creds, merchant_private_key_pem=generate_private_key_pem()))
    with pytest.raises(WeChatPayError) as err:
        _prepay(impostor, notify_url)
    assert (err.value.status, err.value.code) == (401, "SIGN_ERROR")


def _raw_post(client, merchant, body: str, timestamp: int | None = None, path="/sandbox/wechat/pay/v3/pay/transactions/jsapi"):
    auth = build_authorization(
        merchant.creds.mchid, merchant.creds.merchant_cert_serial, merchant.merchant_private_pem,
        "POST", path, body, timestamp=timestamp,
    )
    return client.post(path, body, content_type="application/json", HTTP_AUTHORIZATION=auth)


def test_stale_or_millisecond_timestamps_are_sign_errors(client, merchant):
    body = json.dumps({"mchid": merchant.creds.mchid})
    for timestamp in (int(time.time()) - 301, int(time.time() * 1000)):
        response = _raw_post(client, merchant, body, timestamp=timestamp)
        assert response.status_code == 401
        assert json.loads(response.content)["code"] == "SIGN_ERROR"
        assert "5分钟" in json.loads(response.content)["message"]


def test_a_one_byte_change_after_signing_is_sign_error(client, merchant):
    body = json.dumps({"mchid": merchant.creds.mchid, "description": "x"})
    path = "/sandbox/wechat/pay/v3/pay/transactions/jsapi"
    auth = build_authorization(
        merchant.creds.mchid, merchant.creds.merchant_cert_serial, merchant.merchant_private_pem, "POST", path, body
    )
    response = client.post(path, body.replace('"x"', '"y"'), content_type="application/json", HTTP_AUTHORIZATION=auth)
    answer = json.loads(response.content)
    assert (response.status_code, answer["code"]) == (401, "SIGN_ERROR")
    assert answer["detail"]["sign_information"]["url"] == path


def test_missing_authorization_and_unknown_merchant(client, merchant):
    path = "/sandbox/wechat/pay/v3/pay/transactions/jsapi"
    assert client.post(path, "{}", content_type="application/json").status_code == 401
    auth = build_authorization("1999999999", "S", merchant.merchant_private_pem, "POST", path, "{}")
    response = client.post(path, "{}", content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert (response.status_code, json.loads(response.content)["code"]) == (400, "MCH_NOT_EXISTS")


def test_every_answer_is_signed_by_the_sandbox_platform_key(client, merchant):
    response = _raw_post(client, merchant, "{}")
    assert response.status_code == 400
    # Without a PUB_KEY_ID_ in Wechatpay-Serial the merchant is answered in certificate mode.
    assert response["Wechatpay-Serial"] == CERT_SERIAL
    assert payv3.verify_wechatpay_signature(
        platform_key().public_pem, response["Wechatpay-Timestamp"], response["Wechatpay-Nonce"],
        response.content, response["Wechatpay-Signature"],
    )
    asked = client.post(
        "/sandbox/wechat/pay/v3/pay/transactions/jsapi", "{}", content_type="application/json",
        HTTP_WECHATPAY_SERIAL=PUBLIC_KEY_ID,
    )
    assert asked["Wechatpay-Serial"] == PUBLIC_KEY_ID


def test_answers_that_do_not_verify_are_unavailable(merchant, transport, notify_url):
    wrong_public_key = PayV3Client(replace(merchant.creds, public_key_pem=public_key_pem(generate_private_key_pem())))
    with pytest.raises(WeChatUnavailable, match="bad_signature"):
        _prepay(wrong_public_key, notify_url)
    no_such_serial = PayV3Client(replace(merchant.creds, public_key_id="PUB_KEY_ID_OTHER"))
    with pytest.raises(WeChatUnavailable, match="unknown_serial"):
        _prepay(no_such_serial, notify_url)


def test_query_unknown_order(pay_client):
    with pytest.raises(WeChatPayError) as err:
        pay_client.query_by_out_trade_no("JZ_NOT_THERE")
    assert (err.value.status, err.value.code) == (404, "ORDER_NOT_EXIST")


def test_unreachable_wechat_pay_is_unavailable(merchant):
    client = PayV3Client(merchant.creds, base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(WeChatUnavailable):
        client.query_by_out_trade_no("JZ20240608000001")


def test_pay_params_for_the_mini_program(pay_client, notify_url, merchant):
    params = pay_client.pay_params(_prepay(pay_client, notify_url))
    assert params["appId"] == merchant.creds.appid
    assert params["signType"] == "RSA"


def test_simulated_payment_notifies_and_query_agrees(pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url, attach="order=7")
    before = pay_client.query_by_out_trade_no("JZ20240608000001")
    assert before == {
        "appid": merchant.creds.appid, "mchid": merchant.creds.mchid, "out_trade_no": "JZ20240608000001",
        "trade_state": "NOTPAY", "trade_state_desc": "订单未支付", "attach": "order=7",
        "amount": {"total": 1200, "currency": "CNY", "payer_currency": "CNY"}, "promotion_detail": [],
    }
    transaction, attempt = sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")
    assert (attempt.status, attempt.acked) == (204, True)
    [notification] = test_urls.RECEIVED
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.serial == PUBLIC_KEY_ID
    resource = notification.resource
    assert list(resource) == [
        "mchid", "appid", "out_trade_no", "transaction_id", "trade_type", "trade_state", "trade_state_desc",
        "bank_type", "attach", "success_time", "payer", "amount",
    ]
    assert resource["amount"] == {"total": 1200, "payer_total": 1200, "currency": "CNY", "payer_currency": "CNY"}
    assert (resource["trade_state"], resource["attach"], resource["payer"]) == ("SUCCESS", "order=7", {"openid": OPENID})
    assert resource["success_time"].endswith("+08:00")
    after = pay_client.query_by_out_trade_no("JZ20240608000001")
    assert after["trade_state"] == "SUCCESS"
    assert after["transaction_id"] == resource["transaction_id"] == transaction["transaction_id"]
    assert pay_client.query_by_transaction_id(resource["transaction_id"])["out_trade_no"] == "JZ20240608000001"
    with pytest.raises(WeChatPayError) as err:
        _prepay(pay_client, notify_url, attach="order=7")
    assert err.value.code == "ORDERPAID"


def test_simulating_again_resends_the_same_notification(pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url)
    sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")
    sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")
    first, second = test_urls.RECEIVED
    assert (first.id, first.raw_body) == (second.id, second.raw_body)


def test_a_failing_merchant_endpoint_is_reported(pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url)
    test_urls.FORCED_STATUS[merchant.creds.notify_token] = 500
    _, attempt = sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")
    assert (attempt.status, attempt.acked) == (500, False)
    assert sandbox_pay.get_transaction(merchant.creds.mchid, "JZ20240608000001")["notify_attempts"][-1]["status"] == 500


def test_simulate_pay_endpoint(client, pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url)
    response = client.post(
        "/sandbox/wechat/pay/_simulate/pay",
        {"mchid": merchant.creds.mchid, "out_trade_no": "JZ20240608000001"},
        content_type="application/json",
    )
    answer = json.loads(response.content)
    assert response.status_code == 200
    assert answer["transaction"]["trade_state"] == "SUCCESS"
    assert answer["notify"] == {"url": notify_url, "status": 204, "acked": True, "error": ""}
    missing = client.post(
        "/sandbox/wechat/pay/_simulate/pay", {"mchid": merchant.creds.mchid, "out_trade_no": "JZ_NONE_0001"},
        content_type="application/json",
    )
    assert (missing.status_code, json.loads(missing.content)["code"]) == (404, "ORDER_NOT_EXIST")


def test_close(pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url)
    assert pay_client.close("JZ20240608000001") is None
    assert pay_client.close("JZ20240608000001") is None
    assert pay_client.query_by_out_trade_no("JZ20240608000001")["trade_state"] == "CLOSED"
    with pytest.raises(WeChatPayError) as err:
        _prepay(pay_client, notify_url)
    assert err.value.code == "ORDER_CLOSED"
    with pytest.raises(sandbox_pay.SandboxPayError):
        sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")


def test_closing_a_paid_order_fails(pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url)
    sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")
    with pytest.raises(WeChatPayError) as err:
        pay_client.close("JZ20240608000001")
    assert err.value.code == "ORDERPAID"


def test_refund_lifecycle(pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url)
    with pytest.raises(WeChatPayError) as err:
        pay_client.refund("JZ20240608000001", "RF20240608000001", 500, 1200)
    assert err.value.code == "INVALID_REQUEST"  # not paid yet
    sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")
    refund = pay_client.refund("JZ20240608000001", "RF20240608000001", 500, 1200, reason="不想要了", notify_url=notify_url)
    assert refund["status"] == "PROCESSING"
    assert refund["amount"]["refund"] == 500
    assert pay_client.refund("JZ20240608000001", "RF20240608000001", 500, 1200, notify_url=notify_url) == refund
    with pytest.raises(WeChatPayError) as err:
        pay_client.refund("JZ20240608000001", "RF20240608000002", 701, 1200)
    assert err.value.code == "INVALID_REQUEST"  # 500 + 701 > 1200
    view, attempt = sandbox_pay.simulate_refund(merchant.creds.mchid, "RF20240608000001")
    assert attempt is not None and attempt.acked
    assert view["status"] == "SUCCESS"
    notification = test_urls.RECEIVED[-1]
    assert (notification.event_type, notification.original_type) == ("REFUND.SUCCESS", "refund")
    assert notification.resource["refund_status"] == "SUCCESS"
    assert notification.resource["amount"] == {"total": 1200, "refund": 500, "payer_total": 1200, "payer_refund": 500}
    assert pay_client.query_refund("RF20240608000001")["status"] == "SUCCESS"
    assert pay_client.query_by_out_trade_no("JZ20240608000001")["trade_state"] == "REFUND"


def test_a_closed_refund_frees_the_amount(pay_client, notify_url, merchant):
    _prepay(pay_client, notify_url)
    sandbox_pay.simulate_payment(merchant.creds.mchid, "JZ20240608000001")
    pay_client.refund("JZ20240608000001", "RF20240608000001", 1200, 1200, notify_url=notify_url)
    _, attempt = sandbox_pay.simulate_refund(merchant.creds.mchid, "RF20240608000001", status="CLOSED")
    assert test_urls.RECEIVED[-1].event_type == "REFUND.CLOSED"
    assert "success_time" not in test_urls.RECEIVED[-1].resource
    assert pay_client.refund("JZ20240608000001", "RF20240608000002", 1200, 1200)["status"] == "PROCESSING"


def test_query_unknown_refund(pay_client):
    with pytest.raises(WeChatPayError) as err:
        pay_client.query_refund("RF_NOT_THERE")
    assert (err.value.status, err.value.code) == (404, "RESOURCE_NOT_EXISTS")


def test_platform_key_is_created_once_and_shared(sandbox, sandbox_dir):
    first = platform_key()
    _platform_key.cache_clear()  # as a fresh process would
    assert platform_key() == first
    assert (sandbox_dir / ".gitignore").read_text() == "*\n"
    assert first.public_key_id == "PUB_KEY_ID_0110000000000000000000000000SANDBOX"
    assert public_key_pem(first.private_pem) == first.public_pem


def test_trade_bill_lists_the_days_payments_and_refunds(pay_client, notify_url, merchant):
    for no, total in (("JZ20240608000001", 1200), ("JZ20240608000002", 800)):
        _prepay(pay_client, notify_url, out_trade_no=no, total=total)
        sandbox_pay.simulate_payment(merchant.creds.mchid, no)
    pay_client.refund("JZ20240608000001", "RF20240608000001", 500, 1200)
    sandbox_pay.simulate_refund(merchant.creds.mchid, "RF20240608000001")
    today = datetime.now(payv3.BEIJING).date()
    meta = pay_client.trade_bill(today)
    assert meta["hash_type"] == "SHA1"
    assert meta["download_url"].startswith("http://testserver/sandbox/wechat/pay/v3/billdownload/file?token=")
    lines = pay_client.download_bill(meta["download_url"], expected_sha1=meta["hash_value"]).decode().splitlines()
    assert lines[0].startswith("交易时间,公众账号ID,商户号")
    rows = [line.split(",") for line in lines[1:-2]]
    assert [(r[6], r[9], r[12], r[16]) for r in rows] == [
        ("`JZ20240608000001", "`SUCCESS", "`12.00", "`0.00"),
        ("`JZ20240608000002", "`SUCCESS", "`8.00", "`0.00"),
        ("`JZ20240608000001", "`REFUND", "`0.00", "`5.00"),
    ]
    assert lines[-2].startswith("总交易单数")
    assert lines[-1].split(",")[:3] == ["`3", "`20.00", "`5.00"]
    with pytest.raises(WeChatUnavailable, match="hash_value"):
        pay_client.download_bill(meta["download_url"], expected_sha1="0" * 40)


def test_trade_bill_for_a_quiet_day(pay_client):
    with pytest.raises(WeChatPayError) as err:
        pay_client.trade_bill("2020-01-01")
    assert (err.value.status, err.value.code) == (400, "NO_STATEMENT_EXIST")


def test_a_certificate_mode_merchant_end_to_end(merchant, transport, monkeypatch, notify_url):
    """Fetch the platform certificate, then pay and get notified, all in certificate mode."""
    bootstrap = replace(merchant.creds, public_key_pem="", public_key_id="", platform_certs={})
    certs = PayV3Client(bootstrap).certificates()
    assert list(certs) == [CERT_SERIAL]
    assert public_key_pem(platform_key().private_pem) == payv3.load_public_key(certs[CERT_SERIAL]).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    cert_mode = replace(bootstrap, platform_certs=certs)
    monkeypatch.setattr("tenants.resolvers.pay_credentials_by_mchid", {cert_mode.mchid: cert_mode}.get)
    test_urls.ACCOUNTS[cert_mode.notify_token] = cert_mode
    client = PayV3Client(cert_mode)
    _prepay(client, notify_url)
    sandbox_pay.simulate_payment(cert_mode.mchid, "JZ20240608000001")
    assert test_urls.RECEIVED[-1].serial == CERT_SERIAL
    assert client.query_by_out_trade_no("JZ20240608000001")["trade_state"] == "SUCCESS"


def test_certificates_with_the_wrong_apiv3_key_are_refused(merchant, transport):
    wrong = replace(merchant.creds, apiv3_key="x" * 32)
    with pytest.raises(WeChatUnavailable):
        PayV3Client(wrong).certificates()
