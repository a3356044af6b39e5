"""seed_demo writes the paid orders behind its purchases, with 会员日 coupons where the plan says."""

from __future__ import annotations

import io
from collections import Counter
from datetime import date

import pytest
from django.core.management import call_command
from django.db import connection

from campaigns.models import ClaimCounter, Coupon, CouponTemplate, PointsEntry
from catalog.models import Item
from payments import seeding as order_seeding
from payments.models import Order, OrderLine, OrderTransition
from profiles import seeding
from profiles.models import Event, Member
from tenants.context import tenant_context
from tests.fixtures import postgres_only

pytestmark = pytest.mark.django_db

END = seeding.default_end(date(2026, 3, 1))


def _seed(tenant, tmp_path, *, members=120, seed=7, **kwargs):
    return seeding.seed_tenant(tenant, members=members, days=90, seed=seed, end=END, planted_dir=tmp_path, **kwargs)


def _generated(members=120, seed=7):
    return list(seeding.generate(seeding.make_plan(seed=seed, members=members, days=90, end=END)))


def _expected_coupon_events(generated) -> set[str]:
    """Purchase events the plan has use the coupon: bargain, 会员日, chosen, and 满 30 (list price)."""
    return {p.event_id for s in generated for p in s.purchases
            if order_seeding.uses_coupon(s, p) and p.amount_fen >= 3000}


def _orders(tenant):
    with tenant_context(tenant):
        return {o.client_order_id: o for o in Order.objects.all()}


def _snapshot(tenant):
    with tenant_context(tenant):
        return {
            "orders": sorted(Order.objects.values_list(
                "out_trade_no", "client_order_id", "member__openid", "state", "subtotal_fen", "discount_fen",
                "payable_fen", "coupon__code", "transaction_id", "paid_at", "fulfilled_at", "created_at")),
            "lines": sorted(OrderLine.objects.values_list("order__out_trade_no", "sku", "qty", "unit_price_fen",
                                                          "amount_fen", "discount_fen")),
            "transitions": sorted(OrderTransition.objects.values_list("order__out_trade_no", "from_state",
                                                                      "to_state", "cause", "created_at")),
            "coupons": sorted(Coupon.objects.values_list("code", "member__openid", "state", "order_ref",
                                                         "discount_fen", "used_at")),
            "templates": sorted(CouponTemplate.objects.values_list("name", "kind", "value", "threshold_fen",
                                                                   "state", "issued")),
            "events": sorted(Event.objects.filter(kind="purchase").values_list("event_id", "amount_fen")),
        }


def test_every_purchase_event_has_one_paid_order_with_its_amount_and_member(tenant_a, tenant_b, tmp_path):
    report = _seed(tenant_a, tmp_path)
    orders = _orders(tenant_a)
    with tenant_context(tenant_a):
        events = {e.event_id: e for e in Event.objects.filter(kind="purchase")}
        transitions = Counter(OrderTransition.objects.values_list("order_id", "from_state", "to_state", "cause"))
        points_entries = PointsEntry.objects.count()
        points = dict(Member.objects.values_list("openid", "points"))

    assert len(events) == report.purchases > 100
    assert set(orders) == set(events)
    for event_id, event in events.items():
        order = orders[event_id]
        assert (order.member_id, order.payable_fen) == (event.member_id, event.amount_fen)
        assert order.state == Order.State.PAID
        assert order.paid_at == order.fulfilled_at == event.ts
        assert order.created_at < order.paid_at < order.expires_at
        assert order.refunded_fen == 0 and not order.needs_attention
        assert len(order.out_trade_no) == 24 and order.out_trade_no.startswith("JZ")
        assert len(order.transaction_id) == 28 and order.transaction_id.isdigit()
    assert len({o.out_trade_no for o in orders.values()}) == len({o.transaction_id for o in orders.values()}) \
        == len(orders)
    # created → paying → paid, each recorded once with the cause "seed".
    assert transitions == Counter({(o.pk, *step, "seed"): 1 for o in orders.values()
                                   for step in (("", "created"), ("created", "paying"), ("paying", "paid"))})
    # Fulfilment never ran: no second purchase event, no points earned on top of the seeded balances.
    assert points_entries == 0
    assert points == {s.member.openid: s.member.points for s in _generated()}
    assert report.notes[0].startswith(f"订单：写入已支付订单 {len(orders)} 笔")
    # The look-alike tenant saw nothing.
    with tenant_context(tenant_b):
        assert not Order.objects.exists() and not OrderLine.objects.exists()
        assert not Coupon.objects.exists() and not CouponTemplate.objects.exists()


def test_browser_members_have_no_orders_and_lines_are_the_catalogue_prices(tenant_a, tmp_path):
    report = _seed(tenant_a, tmp_path)
    planted = seeding.read_planted(report.planted_csv)
    with tenant_context(tenant_a):
        prices = {item.pk: (item.sku, item.name, item.category_id, item.price_fen) for item in Item.objects.all()}
        buyers = Counter(Order.objects.values_list("member__openid", flat=True))
        lines = list(OrderLine.objects.values_list("order_id", "item_id", "sku", "name", "category_id",
                                                   "unit_price_fen", "qty", "amount_fen", "discount_fen"))
        orders = {o.pk: o for o in Order.objects.all()}
        event_items = {e: p["items"] for e, p in Event.objects.filter(kind="purchase").values_list("event_id", "props")}

    browsers = {o for o, group in planted.items() if group == "browser"}
    assert len(browsers) > 20
    assert browsers.isdisjoint(buyers)
    assert {planted[o] for o in buyers} == {"high_value", "bargain", "lapsed", "new"}
    by_order: dict[int, list] = {}
    for order_id, item_id, sku, name, category_id, unit, qty, amount, discount in lines:
        assert (sku, name, category_id, unit) == prices[item_id]
        assert amount == unit * qty and 0 <= discount <= amount
        by_order.setdefault(order_id, []).append((sku, qty, amount, discount))
    assert set(by_order) == set(orders)
    for order_id, order in orders.items():
        got = by_order[order_id]
        assert order.subtotal_fen == sum(a for _, _, a, _ in got)
        assert order.discount_fen == sum(d for _, _, _, d in got)
        assert order.payable_fen == order.subtotal_fen - order.discount_fen
        assert sorted((s, q) for s, q, _, _ in got) == sorted((i["sku"], i["qty"])
                                                              for i in event_items[order.client_order_id])


def test_bargain_members_use_the_member_day_coupon_and_their_events_say_what_was_paid(tenant_a, tmp_path):
    _seed(tenant_a, tmp_path)
    generated = _generated()
    expected = _expected_coupon_events(generated)
    promo_bargain = {p.event_id for s in generated if s.group == "bargain" for p in s.purchases if p.promo}
    orders = _orders(tenant_a)
    with tenant_context(tenant_a):
        template = CouponTemplate.objects.get()
        coupons = {c.pk: c for c in Coupon.objects.all()}
        counters = dict(ClaimCounter.objects.values_list("member_id", "count"))
        events = {e.event_id: e for e in Event.objects.filter(event_id__in=list(orders))}

    assert (template.name, template.kind, template.value, template.threshold_fen, template.state) == (
        "会员日 满30减5", "cash_off", 500, 3000, "active")
    # Some, not all, of the bargain group's member-day purchases; nobody else's.
    assert 0 < len(expected) < len(promo_bargain)
    used = {event_id: order for event_id, order in orders.items() if order.coupon_id is not None}
    assert set(used) == expected
    group_of = {p.event_id: s.group for s in generated for p in s.purchases}
    assert {group_of[event_id] for event_id in used} == {"bargain"}
    assert template.issued == len(coupons) == len(used)
    assert sum(counters.values()) == len(used)
    assert counters == Counter(order.member_id for order in used.values())
    for event_id, order in orders.items():
        event = events[event_id]
        assert event.amount_fen == order.payable_fen == event.props["amount_fen"]
        if event_id not in used:
            assert order.discount_fen == 0 and "coupon_id" not in event.props
            continue
        coupon = coupons[order.coupon_id]
        assert (coupon.state, coupon.order_ref, coupon.member_id, coupon.template_id) == (
            "used", order.out_trade_no, order.member_id, template.pk)
        assert coupon.discount_fen == order.discount_fen == 500
        assert order.subtotal_fen >= 3000 and order.payable_fen == order.subtotal_fen - 500
        assert coupon.valid_from <= coupon.locked_at == order.created_at < coupon.used_at == order.paid_at
        assert coupon.used_at < coupon.valid_until
        assert seeding.is_promo_day(order.paid_at.astimezone(seeding.SHANGHAI).date())
        assert (event.props["coupon_id"], event.props["discount_fen"], event.props["out_trade_no"]) == (
            coupon.pk, 500, order.out_trade_no)
        assert sum(item["discount_fen"] for item in event.props["items"]) == 500


def test_rerun_adds_nothing_and_growing_adds_only_the_new_members_orders(tenant_a, tmp_path):
    _seed(tenant_a, tmp_path, members=60)
    before = _snapshot(tenant_a)
    assert before["orders"] and before["coupons"]

    again = _seed(tenant_a, tmp_path, members=60)
    assert _snapshot(tenant_a) == before
    assert again.notes == ["订单：写入已支付订单 0 笔，实收 ¥0.00；其中用券 0 张，优惠 ¥0.00。"]

    # The writer itself skips orders that exist, should it see the same members again.
    batch = _generated(members=60)
    with tenant_context(tenant_a):
        ids = dict(Member.objects.values_list("openid", "id"))
        assert order_seeding.write_orders(tenant_a, batch, ids) == {}
    assert _snapshot(tenant_a) == before

    grown = _seed(tenant_a, tmp_path, members=100, chunk=25)
    after = _snapshot(tenant_a)
    new_purchases = [p for s in _generated(members=100)[60:] for p in s.purchases]
    assert len(after["orders"]) - len(before["orders"]) == len(new_purchases) == grown.purchases
    assert set(before["orders"]) < set(after["orders"]) and set(before["coupons"]) < set(after["coupons"])
    assert len(after["templates"]) == 1 and after["templates"][0][5] == len(after["coupons"])


def test_same_seed_gives_the_same_orders_in_look_alike_tenants_kept_apart(tenant_a, tenant_b, tmp_path):
    _seed(tenant_a, tmp_path / "a", members=80)
    before = _snapshot(tenant_a)
    _seed(tenant_b, tmp_path / "b", members=80)
    assert _snapshot(tenant_a) == before
    b = _snapshot(tenant_b)
    assert b == before  # same seed, same orders, coupons and codes: by value, in their own rows
    with tenant_context(tenant_a):
        pks_a = set(Order.objects.values_list("pk", flat=True))
        coupon_pks_a = set(Coupon.objects.values_list("pk", flat=True))
    with tenant_context(tenant_b):
        assert not Order.objects.filter(pk__in=pks_a).exists()
        assert not Coupon.objects.filter(pk__in=coupon_pks_a).exists()
        assert Order.objects.exclude(member__tenant_id=tenant_b.pk).count() == 0
        assert not Order.objects.filter(coupon__isnull=False).exclude(coupon__tenant_id=tenant_b.pk).exists()


def test_command_summary_has_the_orders_line(tenant_a, tmp_path):
    out = io.StringIO()
    call_command("seed_demo", "shop-a", "--members", "40", "--seed", "5", "--until", "2026-03-01",
                 "--planted-dir", str(tmp_path), verbosity=0, stdout=out)
    with tenant_context(tenant_a):
        orders = list(Order.objects.values_list("payable_fen", "discount_fen", "coupon_id"))
    used = [o for o in orders if o[2] is not None]
    revenue = sum(o[0] for o in orders)
    expected = (f"订单：写入已支付订单 {len(orders)} 笔，实收 ¥{revenue / 100:,.2f}；"
                f"其中用券 {len(used)} 张，优惠 ¥{sum(o[1] for o in used) / 100:,.2f}。")
    assert orders and expected in out.getvalue().splitlines()


@postgres_only
def test_orders_are_written_under_row_level_security(tenant_a, tenant_b, tmp_path):
    _seed(tenant_a, tmp_path, members=30)
    with tenant_context(tenant_a):
        count = Order.objects.count()
    assert count > 0
    for table in ("payments_order", "payments_orderline", "payments_ordertransition", "campaigns_coupon"):
        with connection.cursor() as cursor:  # no tenant in context: the policy shows nothing
            cursor.execute(f"SELECT count(*) FROM {table}")
            assert cursor.fetchone()[0] == 0
        with tenant_context(tenant_b), connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            assert cursor.fetchone()[0] == 0
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM payments_order")
        assert cursor.fetchone()[0] == count
