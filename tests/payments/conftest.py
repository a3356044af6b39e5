"""Two look-alike shops with real WeChat Pay key material, catalogue, a member each, and notify builders."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection
from django.test import Client, TestCase

from catalog.models import Category, Item
from payments import actions
from payments.models import Order
from profiles.models import Member
from tenants import actions as tenant_actions
from tenants import resolvers
from tenants.context import tenant_context
from tenants.credentials import PayCredentials
from wechat.notify import build_signed_notification
from wechat.payv3 import generate_private_key_pem
from wechat.testing import public_key_pem, self_signed_cert_pem

PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000TEST"
CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
# Look-alike on purpose: the same APIv3 key and v2 key in both shops, so only mchid/appid and the
# tenant's own rows keep them apart.
APIV3_KEY = "0123456789abcdef0123456789ABCDEF"
V2_KEY = "fedcba9876543210FEDCBA9876543210"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
PRICES = {"LATTE": 2800, "BAGEL": 1500}


@pytest.fixture(scope="session")
def platform_pem() -> str:
    return generate_private_key_pem()


@pytest.fixture(scope="session")
def merchant_pems() -> dict[str, str]:
    return {"a": generate_private_key_pem(), "b": generate_private_key_pem()}


@dataclass
class Shop:
    tenant: Any
    mchid: str
    appid: str
    platform_pem: str
    member: Member
    items: dict[str, Item] = field(default_factory=dict)

    @property
    def creds(self) -> PayCredentials:
        return resolvers.pay_credentials_for(self.tenant)

    @property
    def token(self) -> str:
        return self.creds.notify_token

    def url(self, version: str = "v3") -> str:
        return f"/pay/wechat/{version}/{self.token}/"

    def order(self, client_order_id: str = "c-1", lines=(("LATTE", 2),), member: Member | None = None) -> Order:
        order, _ = actions.create_order(
            self.tenant, member or self.member, client_order_id=client_order_id,
            lines=[{"sku": sku, "qty": qty} for sku, qty in lines],
        )
        return order

    def resource(self, order: Order, **overrides: Any) -> dict[str, Any]:
        resource = {
            "mchid": self.mchid,
            "appid": self.appid,
            "out_trade_no": order.out_trade_no,
            "transaction_id": "4200000000" + order.out_trade_no[-18:].rjust(18, "0"),
            "trade_type": "JSAPI",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": "2026-11-28T19:34:56+08:00",
            "payer": {"openid": OPENID},
            "amount": {"total": order.payable_fen, "payer_total": order.payable_fen, "currency": "CNY",
                       "payer_currency": "CNY"},
        }
        for key, value in overrides.items():
            if key == "amount":
                resource["amount"] = {**resource["amount"], **value}
            else:
                resource[key] = value
        return resource

    def notification(self, resource: dict[str, Any], *, serial: str = PUBLIC_KEY_ID, notify_id: str | None = None,
                     event_type: str = "TRANSACTION.SUCCESS", original_type: str = "transaction",
                     apiv3_key: str = APIV3_KEY, **kwargs: Any) -> tuple[dict[str, str], bytes]:
        headers, body = build_signed_notification(
            self.platform_pem, serial, apiv3_key, event_type, resource, original_type, notify_id=notify_id,
            **kwargs,
        )
        return {k: v for k, v in headers.items() if k != "Content-Type"}, body


def make_shop(tenant, letter: str, appid: str, platform_pem: str, merchant_pem: str,
              public_key_id: str = PUBLIC_KEY_ID) -> Shop:
    mchid = "19000000" + ("01" if letter == "a" else "02")
    tenant_actions.set_pay_account(
        tenant, mchid=mchid, apiv3_key=APIV3_KEY, merchant_private_key=merchant_pem,
        merchant_cert_serial="3775B6A45ACD588826D15E583A95F5DD0000000" + ("1" if letter == "a" else "2"),
        public_key_pem=public_key_pem(platform_pem), public_key_id=public_key_id,
        platform_certs={CERT_SERIAL: self_signed_cert_pem(platform_pem, CERT_SERIAL)}, v2_key=V2_KEY,
    )
    with tenant_context(tenant):
        member = Member.objects.create(openid=OPENID, nickname=f"member {letter}")
        category = Category.objects.create(name="咖啡")
        items = {sku: Item.objects.create(sku=sku, name=sku.title(), category=category, price_fen=price)
                 for sku, price in PRICES.items()}
    return Shop(tenant, mchid, appid, platform_pem, member, items)


@pytest.fixture
def shop_a(tenant_a, platform_pem, merchant_pems) -> Shop:
    return make_shop(tenant_a, "a", "wxa0000000000000a1", platform_pem, merchant_pems["a"])


@pytest.fixture
def shop_b(tenant_b, platform_pem, merchant_pems) -> Shop:
    return make_shop(tenant_b, "b", "wxb0000000000000b1", platform_pem, merchant_pems["b"])


def post_notify(client, shop: Shop, headers: dict[str, str], body: bytes, version: str = "v3"):
    """Post as WeChat does; what the request sends on commit (the fulfilment outbox) runs too."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(shop.url(version), data=body, content_type="application/json", headers=headers)


def post_notifies_at_once(shop: Shop, deliveries: list[tuple[dict[str, str], bytes]]) -> list[int]:
    """Each (headers, body) posted from its own thread and connection, all released together; the statuses."""
    barrier = threading.Barrier(len(deliveries))
    statuses: list[int] = []

    def deliver(headers, body):
        try:
            barrier.wait()
            statuses.append(post_notify(Client(), shop, headers, body).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=d) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def reload(shop: Shop, order: Order) -> Order:
    with tenant_context(shop.tenant):
        return Order.objects.get(pk=order.pk)


def auth(member: Member) -> dict[str, str]:
    from profiles import tokens

    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(member.tenant_id, member.pk, tokens.ACCESS)}"}


@pytest.fixture
def sandbox(settings, tmp_path):
    """WeChat Pay is the in-process sandbox at http://testserver/sandbox/wechat/pay; its notifies reach us."""
    from wechat.testing import sandbox_transport

    settings.ROOT_URLCONF = "tests.payments.urls"
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.WECHATPAY_API_BASE = "http://testserver/sandbox/wechat/pay"
    settings.WECHAT_API_BASE = "http://testserver/sandbox/wechat"
    settings.WECHAT_SANDBOX_DIR = str(tmp_path)
    with sandbox_transport() as routed:
        yield routed


def sandbox_shop(tenant, letter, appid, merchant_pem):
    from wechat.sandbox.platform import platform_key

    key = platform_key()
    return make_shop(tenant, letter, appid, key.private_pem, merchant_pem, public_key_id=key.public_key_id)


@pytest.fixture
def paying_a(sandbox, tenant_a, merchant_pems) -> Shop:
    return sandbox_shop(tenant_a, "a", "wxa0000000000000a1", merchant_pems["a"])


@pytest.fixture
def paying_b(sandbox, tenant_b, merchant_pems) -> Shop:
    return sandbox_shop(tenant_b, "b", "wxb0000000000000b1", merchant_pems["b"])
