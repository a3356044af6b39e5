"""Console Orders pages: list and filters, order page with its history and notify log, refunds by role."""

from __future__ import annotations

import pytest
from django.test import TestCase

from payments.models import Refund
from tenants.context import tenant_context
from tests.fixtures import ROLES
from tests.payments.conftest import auth, post_notify, reload
from wechat.sandbox import pay as sandbox_pay

pytestmark = pytest.mark.django_db


def _login(client, shop, role, staff_factory):
    user = staff_factory(shop.tenant, f"{role}-{shop.tenant.slug}", role).user
    client.force_login(user)
    return user


def test_list_shows_only_this_tenants_orders_and_filters(client, shop_a, shop_b, staff_factory):
    order_a = shop_a.order("c-1")
    paid_a = shop_a.order("c-2", (("BAGEL", 1),))
    headers, body = shop_a.notification(shop_a.resource(paid_a))
    assert post_notify(client, shop_a, headers, body).status_code == 204
    order_b = shop_b.order("c-1")
    _login(client, shop_a, "analyst", staff_factory)

    page = client.get("/console/shop-a/orders/").content.decode()
    assert order_a.out_trade_no in page and paid_a.out_trade_no in page
    assert order_b.out_trade_no not in page
    paid_only = client.get("/console/shop-a/orders/?state=paid").content.decode()
    assert paid_a.out_trade_no in paid_only and order_a.out_trade_no not in paid_only
    by_member = client.get(f"/console/shop-a/orders/?member={shop_a.member.openid}").content.decode()
    assert order_a.out_trade_no in by_member
    assert client.get(f"/console/shop-a/orders/{order_b.pk}/").status_code == 404


def test_order_page_shows_transitions_and_decrypted_notify(client, shop_a, staff_factory):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order, amount={"total": 1}))
    post_notify(client, shop_a, headers, body)
    _login(client, shop_a, "owner", staff_factory)
    page = client.get(f"/console/shop-a/orders/{order.pk}/").content.decode()
    assert "amount_mismatch" in page
    assert '&quot;total&quot;: 1' in page  # the decrypted resource, not the ciphertext
    assert "ciphertext" not in page
    assert "data-state=\"created\"" in page


def _paid_for_console(client, shop):
    order = shop.order()
    assert client.post(f"/api/v1/orders/{order.out_trade_no}/pay", **auth(shop.member)).status_code == 200
    with TestCase.captureOnCommitCallbacks(execute=True):
        sandbox_pay.simulate_payment(shop.mchid, order.out_trade_no)
    return reload(shop, order)


@pytest.mark.parametrize("role", ROLES)
def test_refund_from_the_console_by_role(client, paying_a, staff_factory, role, django_capture_on_commit_callbacks):
    order = _paid_for_console(client, paying_a)
    _login(client, paying_a, role, staff_factory)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/console/shop-a/orders/{order.pk}/refund/", {"amount": "12.34", "reason": "破损"})
    with tenant_context(paying_a.tenant):
        refunds = list(Refund.objects.values_list("amount_fen", "reason", "state", "requested_by__username"))
    if role in ("owner", "manager"):
        assert response.status_code == 302
        assert refunds == [(1234, "破损", "processing", f"{role}-shop-a")]
    else:
        assert response.status_code == 403
        assert refunds == []


def test_console_refund_over_the_paid_amount_is_refused_in_words(client, paying_a, staff_factory):
    order = _paid_for_console(client, paying_a)
    _login(client, paying_a, "owner", staff_factory)
    response = client.post(f"/console/shop-a/orders/{order.pk}/refund/", {"amount": "56.01"}, follow=True)
    assert "退款金额超过可退金额。" in response.content.decode()
    response = client.post(f"/console/shop-a/orders/{order.pk}/refund/", {"amount": "1.234"}, follow=True)
    assert "金额必须大于 0，最多两位小数。" in response.content.decode()
    with tenant_context(paying_a.tenant):
        assert Refund.objects.count() == 0


def test_another_tenants_order_cannot_be_refunded_from_here(client, paying_a, paying_b, staff_factory):
    order_b = _paid_for_console(client, paying_b)
    _login(client, paying_a, "owner", staff_factory)
    assert client.post(f"/console/shop-a/orders/{order_b.pk}/refund/", {"amount": "1.00"}).status_code == 404
    with tenant_context(paying_b.tenant):
        assert Refund.objects.count() == 0


def test_reconciliation_page_lists_flagged_notifications_and_resolving_clears_the_flag(client, shop_a,
                                                                                       staff_factory):
    order = shop_a.order()
    headers, body = shop_a.notification(shop_a.resource(order, amount={"total": 1}))
    post_notify(client, shop_a, headers, body)
    _login(client, shop_a, "manager", staff_factory)
    page = client.get("/console/shop-a/orders/reconciliation/").content.decode()
    assert "amount_mismatch" in page
    with tenant_context(shop_a.tenant):
        from payments.models import PaymentNotification

        note = PaymentNotification.objects.get()
    assert client.post(f"/console/shop-a/orders/notifications/{note.pk}/resolve/").status_code == 302
    assert reload(shop_a, order).needs_attention is False
    assert "amount_mismatch" not in client.get("/console/shop-a/orders/reconciliation/").content.decode()


def test_console_refund_while_wechat_is_down_is_kept_for_later(client, paying_a, staff_factory, settings,
                                                                django_capture_on_commit_callbacks):
    order = _paid_for_console(client, paying_a)
    _login(client, paying_a, "owner", staff_factory)
    settings.WECHATPAY_API_BASE = "http://127.0.0.1:9/nowhere"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/console/shop-a/orders/{order.pk}/refund/", {"amount": "10.00"})
    assert response.status_code == 302
    with tenant_context(paying_a.tenant):
        assert list(Refund.objects.values_list("amount_fen", "state")) == [(1000, "requested")]
    assert reload(paying_a, order).refunded_fen == 0
