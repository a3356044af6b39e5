"""POST /api/v1/orders, GET /api/v1/orders/<no>, POST /api/v1/orders/<no>/pay — on the in-process sandbox."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from campaigns import actions as campaign_actions
from campaigns.models import Coupon
from payments import actions
from payments.models import Order, OrderTransition
from profiles.models import Member
from tenants.context import tenant_context
from tests.payments.conftest import auth, reload
from wechat.payv3 import load_private_key

pytestmark = pytest.mark.django_db


def _create(client, shop, body, member=None):
    return client.post("/api/v1/orders", data=body, content_type="application/json", **auth(member or shop.member))


def test_create_prices_from_the_catalogue_and_ignores_client_prices(client, shop_a):
    body = {"client_order_id": "c-1", "lines": [{"sku": "LATTE", "qty": 2, "price_fen": 1},
                                                 {"sku": "BAGEL", "qty": 1}]}
    response = _create(client, shop_a, body)
    assert response.status_code == 201
    data = response.json()
    assert data["state"] == "created"
    assert (data["subtotal_fen"], data["discount_fen"], data["payable_fen"]) == (7100, 0, 7100)
    assert [(line["sku"], line["qty"], line["unit_price_fen"], line["amount_fen"]) for line in data["lines"]] == [
        ("BAGEL", 1, 1500, 1500), ("LATTE", 2, 2800, 5600)]
    assert len(data["out_trade_no"]) == 24 and data["out_trade_no"].startswith("JZ")
    assert data["expires_at"].endswith("+08:00")


def test_same_client_order_id_returns_the_same_order(client, shop_a):
    body = {"client_order_id": "c-1", "lines": [{"sku": "LATTE", "qty": 2}]}
    first = _create(client, shop_a, body)
    again = _create(client, shop_a, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    with tenant_context(shop_a.tenant):
        assert Order.objects.count() == 1

    other = _create(client, shop_a, {"client_order_id": "c-1", "lines": [{"sku": "LATTE", "qty": 3}]})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"client_order_id": "c", "lines": [{"sku": "NOPE", "qty": 1}]}, 400, "unknown_sku"),
        ({"client_order_id": "c", "lines": []}, 400, "invalid"),
        ({"client_order_id": "c", "lines": [{"sku": "LATTE", "qty": 0}]}, 400, "invalid"),
        ({"lines": [{"sku": "LATTE", "qty": 1}]}, 400, "invalid"),
        ({"client_order_id": "c", "lines": [{"sku": "LATTE", "qty": 1}], "coupon": "NOSUCHCODE"}, 409,
         "coupon_not_applicable"),
    ],
)
def test_bad_orders_are_refused_and_nothing_is_stored(client, shop_a, body, status, code):
    response = _create(client, shop_a, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    with tenant_context(shop_a.tenant):
        assert Order.objects.count() == 0


def test_inactive_item_cannot_be_ordered(client, shop_a):
    with tenant_context(shop_a.tenant):
        shop_a.items["BAGEL"].active = False
        shop_a.items["BAGEL"].save()
    response = _create(client, shop_a, {"client_order_id": "c", "lines": [{"sku": "BAGEL", "qty": 1}]})
    assert response.json()["error"] == {"code": "unknown_sku", "message": "商品不存在或已下架。",
                                        "details": {"skus": ["BAGEL"]}}


def test_orders_are_per_tenant_and_per_member(client, shop_a, shop_b):
    body = {"client_order_id": "c-1", "lines": [{"sku": "LATTE", "qty": 1}]}
    no_a = _create(client, shop_a, body).json()["out_trade_no"]
    created_b = _create(client, shop_b, body)
    assert created_b.status_code == 201  # same member openid and client id in shop B: its own order
    no_b = created_b.json()["out_trade_no"]
    assert no_a != no_b

    assert client.get(f"/api/v1/orders/{no_a}", **auth(shop_a.member)).json()["out_trade_no"] == no_a
    for member, number in ((shop_b.member, no_a), (shop_a.member, no_b)):
        response = client.get(f"/api/v1/orders/{number}", **auth(member))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    with tenant_context(shop_a.tenant):
        neighbour = Member.objects.create(openid="o-neighbour")
    assert client.get(f"/api/v1/orders/{no_a}", **auth(neighbour)).status_code == 404
    assert client.post(f"/api/v1/orders/{no_a}/pay", **auth(neighbour)).status_code == 404


def test_anonymous_callers_are_refused(client, shop_a):
    order = shop_a.order()
    assert client.get(f"/api/v1/orders/{order.out_trade_no}").status_code == 401
    assert client.post(f"/api/v1/orders/{order.out_trade_no}/pay").status_code == 401


def _coupon(shop, **template):
    template = {"name": "满30减5", "kind": "cash_off", "value": 500, "threshold_fen": 3000, "valid_days": 7, **template}
    t = campaign_actions.create_coupon_template(shop.tenant, activate=True, **template)
    return campaign_actions.claim_coupon(shop.tenant, t.pk, shop.member).coupon


def _coupon_state(shop, coupon):
    with tenant_context(shop.tenant):
        c = Coupon.objects.get(pk=coupon.pk)
    return c.state, c.order_ref


def test_order_with_a_coupon_locks_it_and_prices_the_discount(client, shop_a):
    coupon = _coupon(shop_a)
    body = {"client_order_id": "c-1", "lines": [{"sku": "LATTE", "qty": 1}, {"sku": "BAGEL", "qty": 1}],
            "coupon": coupon.code}
    data = _create(client, shop_a, body).json()
    assert (data["subtotal_fen"], data["discount_fen"], data["payable_fen"], data["coupon"]) == (4300, 500, 3800,
                                                                                                coupon.code)
    assert sum(line["discount_fen"] for line in data["lines"]) == 500
    assert _coupon_state(shop_a, coupon) == ("locked", data["out_trade_no"])
    # The same coupon cannot go on a second order while locked.
    second = _create(client, shop_a, {**body, "client_order_id": "c-2"})
    assert second.status_code == 409
    assert second.json()["error"]["details"] == {"reason": "coupon_locked"}


def test_coupon_below_threshold_is_refused(client, shop_a):
    coupon = _coupon(shop_a)
    response = _create(client, shop_a, {"client_order_id": "c", "lines": [{"sku": "BAGEL", "qty": 1}],
                                        "coupon": coupon.pk})
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"reason": "below_threshold"}
    assert _coupon_state(shop_a, coupon) == ("unused", "")


def test_another_tenants_coupon_is_not_found(client, shop_a, shop_b):
    coupon_b = _coupon(shop_b)
    response = _create(client, shop_a, {"client_order_id": "c", "lines": [{"sku": "LATTE", "qty": 2}],
                                        "coupon": coupon_b.code})
    assert response.json()["error"]["details"] == {"reason": "not_found"}
    assert _coupon_state(shop_b, coupon_b) == ("unused", "")


def test_closing_an_unpaid_order_releases_its_coupon(client, shop_a):
    coupon = _coupon(shop_a)
    number = _create(client, shop_a, {"client_order_id": "c", "lines": [{"sku": "LATTE", "qty": 2}],
                                      "coupon": coupon.code}).json()["out_trade_no"]
    order = actions.close_order(shop_a.tenant, _by_no(shop_a, number).pk)
    assert order.state == "closed"
    assert _coupon_state(shop_a, coupon) == ("unused", "")


def _by_no(shop, number):
    with tenant_context(shop.tenant):
        return Order.objects.get(out_trade_no=number)


# --- pay -----------------------------------------------------------------------------------------


def _pay(client, shop, number, member=None):
    return client.post(f"/api/v1/orders/{number}/pay", **auth(member or shop.member))


def _jsapi_calls(routed):
    return [c for c in routed.calls if c[1].endswith("/v3/pay/transactions/jsapi")]


def test_pay_returns_signed_request_payment_params_and_reuses_the_prepay_id(client, paying_a, sandbox):
    order = paying_a.order()
    response = _pay(client, paying_a, order.out_trade_no)
    assert response.status_code == 200
    params = response.json()
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["appId"] == "wxa0000000000000a1"
    assert params["signType"] == "RSA"
    assert params["package"].startswith("prepay_id=wx")
    message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    public = load_private_key(paying_a.creds.merchant_private_key_pem).public_key()
    public.verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())

    order = reload(paying_a, order)
    assert order.state == "paying"
    assert params["package"] == f"prepay_id={order.prepay_id}"
    again = _pay(client, paying_a, order.out_trade_no).json()
    assert again["package"] == params["package"]
    assert len(_jsapi_calls(sandbox)) == 1
    with tenant_context(paying_a.tenant):
        assert list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True)) == [
            "created", "paying"]


def test_the_whole_loop_in_process(client, paying_a, sandbox):
    from wechat.sandbox import pay as sandbox_pay

    order = paying_a.order()
    assert _pay(client, paying_a, order.out_trade_no).status_code == 200
    _, attempt = sandbox_pay.simulate_payment(paying_a.mchid, order.out_trade_no)
    assert attempt.status == 204
    data = client.get(f"/api/v1/orders/{order.out_trade_no}", **auth(paying_a.member)).json()
    assert data["state"] == "paid"
    assert data["paid_at"].endswith("+08:00")
    # Paying again is refused with a clear answer.
    response = _pay(client, paying_a, order.out_trade_no)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "order_paid")


def test_wechat_unreachable_is_503(client, paying_a, settings):
    settings.WECHATPAY_API_BASE = "http://127.0.0.1:9/v3-nowhere"
    order = paying_a.order()
    response = _pay(client, paying_a, order.out_trade_no)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "wechat_unavailable"
    assert reload(paying_a, order).state == "created"


def test_wechat_refusal_is_a_clear_409(client, paying_a, sandbox, monkeypatch):
    from wechat.errors import WeChatPayError

    def refuse(self, **kwargs):
        raise WeChatPayError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")

    monkeypatch.setattr("wechat.payv3.PayV3Client.jsapi_prepay", refuse)
    order = paying_a.order()
    response = _pay(client, paying_a, order.out_trade_no)
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "wechat_pay_refused", "message": "微信支付拒绝了这个请求。",
        "details": {"wechat_code": "APPID_MCHID_NOT_MATCH", "wechat_message": "appid和mch_id不匹配"}}


def test_pay_without_a_pay_account_is_409(client, tenant_a):
    with tenant_context(tenant_a):
        member = Member.objects.create(openid="o-1")
    response = client.post("/api/v1/orders/JZ000/pay", **auth(member))
    assert (response.status_code, response.json()["error"]["code"]) == (409, "pay_not_configured")


def test_paid_order_consumes_coupon_and_earns_points(client, paying_a, sandbox,
                                                     django_capture_on_commit_callbacks):
    from wechat.sandbox import pay as sandbox_pay

    coupon = _coupon(paying_a)
    number = _create(client, paying_a, {"client_order_id": "c", "lines": [{"sku": "LATTE", "qty": 2}],
                                        "coupon": coupon.code}).json()["out_trade_no"]
    assert _pay(client, paying_a, number).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        sandbox_pay.simulate_payment(paying_a.mchid, number)
    assert _coupon_state(paying_a, coupon) == ("used", number)  # consumed by the fulfilment after commit
    with tenant_context(paying_a.tenant):
        assert Member.objects.get(pk=paying_a.member.pk).points == 51  # 51.00 yuan paid, 1 point per yuan


def test_an_order_the_coupon_pays_in_full_is_paid_at_once(client, shop_a, django_capture_on_commit_callbacks):
    coupon = _coupon(shop_a, name="免费拿铁", kind="exchange", value=0, threshold_fen=0,
                     exchange_item=shop_a.items["LATTE"])
    with django_capture_on_commit_callbacks(execute=True):
        data = _create(client, shop_a, {"client_order_id": "free", "lines": [{"sku": "LATTE", "qty": 1}],
                                        "coupon": coupon.code}).json()
    assert (data["state"], data["payable_fen"], data["discount_fen"]) == ("paid", 0, 2800)
    assert _coupon_state(shop_a, coupon) == ("used", data["out_trade_no"])
    response = _pay(client, shop_a, data["out_trade_no"])
    assert (response.status_code, response.json()["error"]["code"]) == (409, "order_paid")
