"""The coupon funnel's revenue: what orders that used a template's coupons paid, net of succeeded refunds."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import actions, queries
from campaigns.models import Coupon
from payments.models import Order, Refund
from tenants.context import tenant_context
from tests.campaigns.conftest import make_template
from tests.fixtures import PASSWORD

pytestmark = pytest.mark.django_db

_numbers = itertools.count(1)


def order(tenant, member, state, payable_fen, *, coupon=None, refunded_fen=0):
    """An order as the payments app leaves it in ``state`` (amounts in fen)."""
    n = next(_numbers)
    with tenant_context(tenant):
        return Order.objects.create(
            out_trade_no=f"JZ2026112800000000{n:06d}", client_order_id=f"c-{n}", member=member, state=state,
            description="Latte", subtotal_fen=payable_fen + 500, discount_fen=500 if coupon else 0,
            payable_fen=payable_fen, refunded_fen=refunded_fen, coupon=coupon,
            expires_at=timezone.now() + timedelta(minutes=30),
        )


def coupon(tenant, template, member, state="used"):
    held = actions.claim_coupon(tenant, template.pk, member, idempotency_key=f"k-{next(_numbers)}").coupon
    with tenant_context(tenant):
        Coupon.objects.filter(pk=held.pk).update(state=state, discount_fen=500 if state == "used" else None)
    return held


@pytest.fixture
def shop(tenant_a, members_a):
    """Shop A's templates and orders; the figures the tests expect are worked out beside each."""
    alice, bob, carol = members_a
    big = make_template(tenant_a, name="满100减20", per_member_limit=0)
    small = make_template(tenant_a, name="立减5元", kind="instant_off", value=500, threshold_fen=0,
                          per_member_limit=0)
    idle = make_template(tenant_a, name="没人用", per_member_limit=0)
    order(tenant_a, alice, "paid", 8000, coupon=coupon(tenant_a, big, alice))
    order(tenant_a, bob, "partially_refunded", 12000, refunded_fen=3000, coupon=coupon(tenant_a, big, bob))
    # Fully refunded, its coupon given back: it counts, at nothing.
    order(tenant_a, carol, "refunded", 9000, refunded_fen=9000, coupon=coupon(tenant_a, big, carol, "unused"))
    # Not paid (yet, or ever): not revenue.
    order(tenant_a, alice, "paying", 7000, coupon=coupon(tenant_a, big, alice, "locked"))
    order(tenant_a, bob, "closed", 6000, coupon=coupon(tenant_a, big, bob, "unused"))
    order(tenant_a, carol, "paid", 5000)  # no coupon
    paid = order(tenant_a, alice, "paid", 4500, coupon=coupon(tenant_a, small, alice))
    # A refund WeChat has not completed yet takes nothing off.
    with tenant_context(tenant_a):
        Refund.objects.create(order=paid, out_refund_no="RF-PENDING-1", amount_fen=1000, state="processing")
    return {"big": big, "small": small, "idle": idle}


@pytest.fixture
def shop_b_lookalike(tenant_b, members_b):
    alice = members_b[0]
    big = make_template(tenant_b, name="满100减20", per_member_limit=0)
    order(tenant_b, alice, "paid", 99_900, coupon=coupon(tenant_b, big, alice))
    return big


def test_revenue_per_template_in_fen_net_of_succeeded_refunds(tenant_a, shop, shop_b_lookalike):
    ids = [t.pk for t in shop.values()]
    with tenant_context(tenant_a):
        revenue = queries.template_revenue(ids + [shop_b_lookalike.pk])
    big, small = revenue[shop["big"].pk], revenue[shop["small"].pk]
    assert (big.orders, big.paid_fen, big.refunded_fen, big.revenue_fen) == (3, 29_000, 12_000, 17_000)
    assert (small.orders, small.paid_fen, small.refunded_fen, small.revenue_fen) == (1, 4500, 0, 4500)
    # Nothing for the idle template, nor for the other shop's look-alike (asked for by id on purpose).
    assert set(revenue) == {shop["big"].pk, shop["small"].pk}


def test_revenue_is_one_query_for_any_number_of_templates(tenant_a, shop, django_assert_num_queries):
    with tenant_context(tenant_a):
        with django_assert_num_queries(1):
            queries.template_revenue([t.pk for t in shop.values()])
        with django_assert_num_queries(1):
            queries.template_revenue([shop["big"].pk])


def _console(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_funnel_pages_show_revenue_and_say_what_it_is(tenant_a, shop, shop_b_lookalike, owner_a):
    client = _console(owner_a)
    page = client.get("/console/shop-a/coupons/").content.decode()
    assert "用券订单实收（扣除已成功的退款）" in page
    assert page.count('data-revenue="') == 3
    for name, fen, shown in (("big", 17_000, "¥170.00"), ("small", 4500, "¥45.00"), ("idle", 0, "¥0.00")):
        assert f'data-revenue="{fen}">{shown}<' in page, name
    assert "999.00" not in page
    detail = client.get(f"/console/shop-a/coupons/{shop['big'].pk}/").content.decode()
    assert 'data-revenue="17000">¥170.00<' in detail
    assert "3 笔订单，支付 ¥290.00，已退款 ¥120.00" in detail
    # The other shop's template is not found here, look-alike or not.
    assert client.get(f"/console/shop-a/coupons/{shop_b_lookalike.pk}/").status_code == 404


def test_the_funnel_page_makes_as_many_queries_for_many_templates_as_for_few(tenant_a, members_a, shop, owner_a):
    client = _console(owner_a)

    def queries_for_index() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/console/shop-a/coupons/").status_code == 200
        return len(captured)

    few = queries_for_index()
    for i in range(4):
        template = make_template(tenant_a, name=f"更多 {i}", per_member_limit=0)
        order(tenant_a, members_a[0], "paid", 1000 + i, coupon=coupon(tenant_a, template, members_a[0]))
    assert queries_for_index() == few
