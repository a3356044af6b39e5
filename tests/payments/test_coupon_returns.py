"""A full refund gives the order's used coupon back, by the tenant's policy, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from campaigns import actions as campaign_actions
from campaigns import queries as campaign_queries
from campaigns.exceptions import NotFound
from campaigns.models import Coupon, LoyaltySettings
from payments import actions
from payments.models import Order, OrderTransition, PaymentNotification, Refund
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.campaigns.conftest import make_template
from tests.fixtures import PASSWORD, postgres_only
from tests.payments.conftest import post_notifies_at_once, post_notify, reload

pytestmark = pytest.mark.django_db

PAYABLE = 5100  # two lattes (2 × 2800) less the 5-yuan coupon


def _paid_with_coupon(client, shop, client_order_id="c-1"):
    """An order of two lattes paid with a 5-yuan coupon (consumed by the payment's fulfilment)."""
    template = make_template(shop.tenant, name="立减5元", kind="instant_off", value=500, threshold_fen=0,
                             valid_days=30)
    coupon = campaign_actions.claim_coupon(shop.tenant, template.pk, shop.member).coupon
    order, _ = actions.create_order(shop.tenant, shop.member, client_order_id=client_order_id,
                                    lines=[{"sku": "LATTE", "qty": 2}], coupon=coupon.code)
    headers, body = shop.notification(shop.resource(order), notify_id=f"PAY-{client_order_id}")
    assert post_notify(client, shop, headers, body).status_code == 204
    order = reload(shop, order)
    assert (order.state, order.payable_fen, order.discount_fen) == ("paid", PAYABLE, 500)
    assert _coupon(shop, coupon) == ("used", order.out_trade_no, 500)
    return order, coupon


def _coupon(shop, coupon):
    with tenant_context(shop.tenant):
        c = Coupon.objects.get(pk=coupon.pk)
    return c.state, c.order_ref, c.discount_fen


def _refund_notice(shop, order, refund, notify_id):
    resource = {"mchid": shop.mchid, "out_trade_no": order.out_trade_no, "transaction_id": order.transaction_id,
                "out_refund_no": refund.out_refund_no, "refund_id": f"50300{refund.pk:010d}",
                "refund_status": "SUCCESS", "success_time": "2026-11-28T20:00:00+08:00",
                "amount": {"total": order.payable_fen, "refund": refund.amount_fen}}
    return shop.notification(resource, notify_id=notify_id, event_type="REFUND.SUCCESS", original_type="refund")


def _refunded(client, shop, order, amount, notify_id):
    refund = actions.request_refund(shop.tenant, order.pk, amount_fen=amount, reason="顾客退货")
    headers, body = _refund_notice(shop, order, refund, notify_id)
    assert post_notify(client, shop, headers, body).status_code == 204
    return refund


def _refund_transitions(shop, order):
    with tenant_context(shop.tenant):
        return list(OrderTransition.objects.filter(order=order, cause="refund").order_by("pk")
                    .values_list("to_state", "details__coupon_return"))


def _returns_audited(shop):
    with tenant_context(shop.tenant):
        return list(AuditEvent.objects.filter(action="coupon.returned_on_refund")
                    .values_list("target", "details__coupon", "details__order", "details__discount_fen"))


def _order_page(shop, order, user):
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get(f"/console/{shop.tenant.slug}/orders/{order.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_full_refund_returns_the_used_coupon_once_and_the_order_page_says_so(client, shop_a, shop_b, owner_a):
    order, coupon = _paid_with_coupon(client, shop_a)
    order_b, coupon_b = _paid_with_coupon(client, shop_b)  # look-alike: same openid, template, amounts
    refund = _refunded(client, shop_a, order, PAYABLE, "RF-EV-1")
    # WeChat tells us again, under the same id and under a new one: nothing more happens.
    for notify_id in ("RF-EV-1", "RF-EV-2"):
        headers, body = _refund_notice(shop_a, order, refund, notify_id)
        assert post_notify(client, shop_a, headers, body).status_code == 204

    order = reload(shop_a, order)
    assert (order.state, order.refunded_fen) == ("refunded", PAYABLE)
    assert _coupon(shop_a, coupon) == ("unused", "", None)
    with tenant_context(shop_a.tenant):
        returned = Coupon.objects.get(pk=coupon.pk)
        notes = sorted(PaymentNotification.objects.filter(event_type="REFUND.SUCCESS")
                       .values_list("notify_id", "outcome", "attempts"))
    assert (returned.used_at, returned.locked_at) == (None, None)
    assert notes == [("RF-EV-1", "applied", 2), ("RF-EV-2", "no_change", 1)]
    assert _refund_transitions(shop_a, order) == [("refunded", {
        "outcome": "returned", "coupon": coupon.code, "state": "unused",
        "valid_until": returned.valid_until.isoformat()})]
    assert _returns_audited(shop_a) == [(f"member:{shop_a.member.pk}", coupon.code, order.out_trade_no, 500)]
    page = _order_page(shop_a, order, owner_a)
    assert 'data-coupon-return="returned"' in page
    assert f"优惠券 {coupon.code} 已退回会员" in page
    # The funnel counts it unused again and its discount is no longer a cost.
    with tenant_context(shop_a.tenant):
        assert campaign_queries.template_funnel([coupon.template_id])[coupon.template_id]["unused"] == 1
        assert campaign_queries.discount_cost([coupon.template_id]) == {}
    # The other shop's look-alike order and coupon are untouched.
    assert reload(shop_b, order_b).state == "paid"
    assert _coupon(shop_b, coupon_b) == ("used", order_b.out_trade_no, 500)
    assert _returns_audited(shop_b) == []


def test_a_returned_coupon_pays_for_a_new_order(client, shop_a):
    order, coupon = _paid_with_coupon(client, shop_a)
    _refunded(client, shop_a, order, PAYABLE, "RF-EV-1")
    again, _ = actions.create_order(shop_a.tenant, shop_a.member, client_order_id="c-2",
                                    lines=[{"sku": "LATTE", "qty": 2}], coupon=coupon.code)
    assert (again.payable_fen, again.coupon_id) == (PAYABLE, coupon.pk)
    assert _coupon(shop_a, coupon) == ("locked", again.out_trade_no, 500)


def test_a_partial_refund_keeps_the_coupon_and_the_refund_that_completes_it_returns_it(client, shop_a):
    order, coupon = _paid_with_coupon(client, shop_a)
    _refunded(client, shop_a, order, 2000, "RF-EV-1")
    assert reload(shop_a, order).state == "partially_refunded"
    assert _coupon(shop_a, coupon) == ("used", order.out_trade_no, 500)
    assert _refund_transitions(shop_a, order) == [("partially_refunded", None)]

    _refunded(client, shop_a, order, PAYABLE - 2000, "RF-EV-2")
    assert reload(shop_a, order).state == "refunded"
    assert _coupon(shop_a, coupon) == ("unused", "", None)
    assert [outcome["outcome"] if outcome else None for _, outcome in _refund_transitions(shop_a, order)] \
        == [None, "returned"]
    assert len(_returns_audited(shop_a)) == 1


def test_a_coupon_past_its_validity_stays_used_and_the_order_page_says_why(client, shop_a, owner_a):
    order, coupon = _paid_with_coupon(client, shop_a)
    ended = timezone.now() - timedelta(minutes=1)
    with tenant_context(shop_a.tenant):
        Coupon.objects.filter(pk=coupon.pk).update(valid_until=ended)
    _refunded(client, shop_a, order, PAYABLE, "RF-EV-1")

    assert reload(shop_a, order).state == "refunded"
    assert _coupon(shop_a, coupon) == ("used", order.out_trade_no, 500)
    assert _refund_transitions(shop_a, order) == [("refunded", {
        "outcome": "expired", "coupon": coupon.code, "state": "used", "valid_until": ended.isoformat()})]
    assert _returns_audited(shop_a) == []
    page = _order_page(shop_a, order, owner_a)
    assert f"优惠券 {coupon.code} 已过有效期，保持已使用" in page


def test_a_tenant_that_never_gives_coupons_back_keeps_them_used(client, shop_a, shop_b, owner_a):
    order, coupon = _paid_with_coupon(client, shop_a)
    order_b, coupon_b = _paid_with_coupon(client, shop_b)
    campaign_actions.save_loyalty_settings(shop_a.tenant, actor=owner_a, points_per_yuan=1, tier_basis="points",
                                           new_member_template_id=None, return_coupon_on_refund="never")
    _refunded(client, shop_a, order, PAYABLE, "RF-EV-1")
    _refunded(client, shop_b, order_b, PAYABLE, "RF-EV-1")  # shop B keeps the default: give it back

    assert _coupon(shop_a, coupon) == ("used", order.out_trade_no, 500)
    assert _refund_transitions(shop_a, order)[0][1]["outcome"] == "policy"
    assert f"按退券设置，优惠券 {coupon.code} 不退回" in _order_page(shop_a, order, owner_a)
    assert _coupon(shop_b, coupon_b) == ("unused", "", None)
    assert _refund_transitions(shop_b, order_b)[0][1]["outcome"] == "returned"


def test_the_policy_defaults_to_full_refund_and_is_edited_in_the_loyalty_settings(shop_a, owner_a):
    with tenant_context(shop_a.tenant):
        assert campaign_queries.loyalty_settings().return_coupon_on_refund == "full_refund"
    client = Client()
    assert client.login(username=owner_a.username, password=PASSWORD)
    page = client.get("/console/shop-a/coupons/loyalty/").content.decode()
    assert 'name="return_coupon_on_refund"' in page
    assert '<option value="full_refund" selected>' in page
    response = client.post("/console/shop-a/coupons/loyalty/", {
        "form": "rules", "points_per_yuan": "1", "tier_basis": "points", "return_coupon_on_refund": "never",
        "points_expire_months": "0"})
    assert response.status_code == 302
    bad = client.post("/console/shop-a/coupons/loyalty/", {
        "form": "rules", "points_per_yuan": "1", "tier_basis": "points", "return_coupon_on_refund": "sometimes"})
    assert bad.status_code == 200
    with tenant_context(shop_a.tenant):
        assert LoyaltySettings.objects.get().return_coupon_on_refund == "never"
        audited = AuditEvent.objects.filter(action="loyalty.settings_updated").get()
    assert audited.details["return_coupon_on_refund"] == "never"


def test_the_return_itself_is_idempotent_and_never_reaches_another_tenants_coupon(client, shop_a, shop_b):
    order, coupon = _paid_with_coupon(client, shop_a)
    order_b, coupon_b = _paid_with_coupon(client, shop_b)
    first = campaign_actions.return_coupon_for_refund(shop_a.tenant, coupon.pk, order.out_trade_no)
    second = campaign_actions.return_coupon_for_refund(shop_a.tenant, coupon.pk, order.out_trade_no)
    assert (first.outcome, first.state, second.outcome, second.state) == ("returned", "unused", "not_used", "unused")
    assert len(_returns_audited(shop_a)) == 1
    with pytest.raises(NotFound):
        campaign_actions.return_coupon_for_refund(shop_a.tenant, coupon_b.pk, order_b.out_trade_no)
    assert _coupon(shop_b, coupon_b) == ("used", order_b.out_trade_no, 500)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_refund_notifies_return_the_coupon_once(shop_a):
    order, coupon = _paid_with_coupon(Client(), shop_a)
    refund = actions.request_refund(shop_a.tenant, order.pk, amount_fen=PAYABLE, reason="顾客退货")
    # Six deliveries at once: three of one notification, three more under ids of their own.
    prepared = [_refund_notice(shop_a, order, refund, f"RF-EV-{i % 4}") for i in range(6)]
    statuses = post_notifies_at_once(shop_a, prepared)

    assert sorted(statuses) == [204] * 6
    order = reload(shop_a, order)
    assert (order.state, order.refunded_fen) == ("refunded", PAYABLE)
    assert _coupon(shop_a, coupon) == ("unused", "", None)
    assert [t[1]["outcome"] for t in _refund_transitions(shop_a, order)] == ["returned"]
    assert len(_returns_audited(shop_a)) == 1
    with tenant_context(shop_a.tenant):
        assert Refund.objects.get().state == "success"
        assert Order.objects.get().refunded_fen == PAYABLE
