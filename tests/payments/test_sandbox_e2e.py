"""The whole loop over real HTTP: order → prepay at the sandbox → the sandbox pays and sends the signed,
encrypted notify → our notify view verifies and applies it → the Mini Program sees the order paid."""

from __future__ import annotations

import pytest
import requests

from tests.payments.conftest import auth, sandbox_shop


@pytest.fixture
def over_http(settings, live_server, tmp_path):
    settings.ROOT_URLCONF = "tests.payments.urls"
    settings.PUBLIC_BASE_URL = live_server.url
    settings.WECHATPAY_API_BASE = f"{live_server.url}/sandbox/wechat/pay"
    settings.WECHAT_API_BASE = f"{live_server.url}/sandbox/wechat"
    settings.WECHAT_SANDBOX_DIR = str(tmp_path)
    return live_server.url


def test_prepay_sandbox_pays_signed_notify_order_paid(over_http, tenant_a, tenant_b, merchant_pems):
    shop = sandbox_shop(tenant_a, "a", "wxa0000000000000a1", merchant_pems["a"])
    sandbox_shop(tenant_b, "b", "wxb0000000000000b1", merchant_pems["b"])
    headers = {"Authorization": auth(shop.member)["HTTP_AUTHORIZATION"]}

    created = requests.post(f"{over_http}/api/v1/orders", headers=headers, timeout=10,
                            json={"client_order_id": "e2e-1", "lines": [{"sku": "LATTE", "qty": 1}]})
    assert created.status_code == 201, created.text
    number = created.json()["out_trade_no"]

    pay = requests.post(f"{over_http}/api/v1/orders/{number}/pay", headers=headers, timeout=10)
    assert pay.status_code == 200, pay.text
    assert pay.json()["package"].startswith("prepay_id=")

    simulated = requests.post(f"{over_http}/sandbox/wechat/pay/_simulate/pay", timeout=10,
                              json={"mchid": shop.mchid, "out_trade_no": number})
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["notify"] == {"url": f"{over_http}/pay/wechat/v3/{shop.token}/", "status": 204,
                                          "acked": True, "error": ""}

    order = requests.get(f"{over_http}/api/v1/orders/{number}", headers=headers, timeout=10).json()
    assert (order["state"], order["payable_fen"]) == ("paid", 2800)
    # WeChat's retry of the same notification is acknowledged and changes nothing.
    again = requests.post(f"{over_http}/sandbox/wechat/pay/_simulate/pay", timeout=10,
                          json={"mchid": shop.mchid, "out_trade_no": number})
    assert again.json()["notify"]["status"] == 204
    assert requests.get(f"{over_http}/api/v1/orders/{number}", headers=headers, timeout=10).json()["state"] == "paid"
