"""Points ledger (balance never negative, equals the ledger sum, concurrent spends safe) and tiers."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection
from django.db.models import Sum

from campaigns import actions
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import Coupon, PointsEntry
from profiles.models import Member
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.campaigns.conftest import make_members, make_template
from tests.fixtures import postgres_only

pytestmark = pytest.mark.django_db


def _book(tenant, member):
    with tenant_context(tenant):
        balance = Member.objects.get(pk=member.pk).points
        total = PointsEntry.objects.filter(member=member).aggregate(s=Sum("delta"))["s"] or 0
        last = PointsEntry.objects.filter(member=member).order_by("-id").first()
        return balance, total, last.balance_after if last else 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_earn_and_spend_keep_balance_equal_to_the_ledger(tenant_a, members_a, seed):
    rng = random.Random(seed)
    alice = members_a[0]
    expected = 0
    for step in range(60):
        delta = rng.choice([1, -1]) * rng.randint(1, 500)
        if expected + delta < 0:
            with pytest.raises(CouponError) as exc:
                actions.change_points(tenant_a, alice, delta, "adjust")
            assert exc.value.code == "insufficient_points"
        else:
            entry = actions.change_points(tenant_a, alice, delta, "earn" if delta > 0 else "adjust",
                                          ref=f"step-{step}" if delta > 0 else "")
            expected += delta
            assert entry.balance_after == expected
    assert _book(tenant_a, alice) == (expected, expected, expected)


def test_earning_for_an_order_is_once_and_follows_the_rule_and_tier_multiplier(tenant_a, members_a, owner_a):
    alice = members_a[0]
    actions.save_loyalty_settings(tenant_a, actor=owner_a, points_per_yuan=2, tier_basis="points",
                                  new_member_template_id=None)
    first = actions.earn_for_order(tenant_a, alice, order_ref="ORD-1", paid_fen=12_345)
    again = actions.earn_for_order(tenant_a, alice, order_ref="ORD-1", paid_fen=12_345)
    assert (first.pk, first.delta) == (again.pk, 246)  # ¥123.45 × 2, rounded down
    actions.save_tier(tenant_a, actor=owner_a, name="金卡", threshold=200, earn_multiplier_pct=150)
    assert actions.evaluate_tier(tenant_a, alice) == "金卡"
    second = actions.earn_for_order(tenant_a, alice, order_ref="ORD-2", paid_fen=10_000)
    assert second.delta == 300
    assert _book(tenant_a, alice) == (546, 546, 546)


def test_tiers_follow_points_or_spend_and_are_re_evaluated_on_each_change(tenant_a, members_a, owner_a):
    alice = members_a[0]
    actions.save_tier(tenant_a, actor=owner_a, name="银卡", threshold=100)
    actions.save_tier(tenant_a, actor=owner_a, name="金卡", threshold=1000)
    actions.earn_for_order(tenant_a, alice, order_ref="O1", paid_fen=15_000)  # 150 points
    assert alice.tier == "银卡"
    actions.earn_for_order(tenant_a, alice, order_ref="O2", paid_fen=90_000)  # 1050
    assert alice.tier == "金卡"
    # Spending points does not lower the tier (it counts what was earned), a refund does.
    actions.change_points(tenant_a, alice, -1000, "adjust", note="兑换礼品")
    assert actions.evaluate_tier(tenant_a, alice) == "金卡"
    actions.reverse_for_refund(tenant_a, alice, refund_ref="R1", order_ref="O2", refunded_fen=90_000)
    with tenant_context(tenant_a):
        assert Member.objects.get(pk=alice.pk).tier == "银卡"
    # By spend: thresholds in fen.
    actions.save_loyalty_settings(tenant_a, actor=owner_a, points_per_yuan=1, tier_basis="spend",
                                  new_member_template_id=None)
    actions.save_tier(tenant_a, actor=owner_a, name="金卡", threshold=100_000,
                      tier_id=_tier_id(tenant_a, "金卡"))
    actions.save_tier(tenant_a, actor=owner_a, name="银卡", threshold=50_000,
                      tier_id=_tier_id(tenant_a, "银卡"))
    assert actions.evaluate_tier(tenant_a, alice) == ""  # 15,000 fen net
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(action="tier.changed").count() == 4


def _tier_id(tenant, name):
    from campaigns.models import Tier

    with tenant_context(tenant):
        return Tier.objects.get(name=name).pk


def test_a_refund_takes_back_no_more_than_the_balance(tenant_a, members_a):
    alice = members_a[0]
    actions.earn_for_order(tenant_a, alice, order_ref="O1", paid_fen=10_000)  # 100
    actions.change_points(tenant_a, alice, -80, "adjust")
    entry = actions.reverse_for_refund(tenant_a, alice, refund_ref="R1", order_ref="O1", refunded_fen=10_000)
    assert (entry.delta, entry.balance_after) == (-20, 0)
    assert "owed 100" in entry.note
    again = actions.reverse_for_refund(tenant_a, alice, refund_ref="R1", order_ref="O1", refunded_fen=10_000)
    assert again.pk == entry.pk
    assert _book(tenant_a, alice) == (0, 0, 0)


def test_exchange_spends_points_and_issues_the_coupon_or_neither(tenant_a, members_a):
    alice, bob = members_a[0], members_a[1]
    template = make_template(tenant_a, channels=["points"], points_cost=300, stock=1)
    actions.change_points(tenant_a, alice, 500, "adjust")
    actions.change_points(tenant_a, bob, 200, "adjust")
    with pytest.raises(CouponError) as exc:
        actions.exchange_points_for_coupon(tenant_a, bob, template.pk)
    assert exc.value.code == "insufficient_points"
    result = actions.exchange_points_for_coupon(tenant_a, alice, template.pk)
    assert result.coupon.channel == "points"
    assert _book(tenant_a, alice) == (200, 200, 200)
    actions.change_points(tenant_a, bob, 200, "adjust")
    with pytest.raises(CouponError) as exc:
        actions.exchange_points_for_coupon(tenant_a, bob, template.pk)
    assert exc.value.code == "sold_out"
    assert _book(tenant_a, bob) == (400, 400, 400)
    with tenant_context(tenant_a):
        assert Coupon.objects.filter(template=template).count() == 1
    plain = make_template(tenant_a, name="not for points")
    with pytest.raises(CouponError) as exc:
        actions.exchange_points_for_coupon(tenant_a, alice, plain.pk)
    assert exc.value.code == "not_exchangeable"


def test_staff_adjustment_needs_a_reason_and_is_audited(tenant_a, members_a, owner_a):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        actions.adjust_points(tenant_a, members_a[0], 50, actor=owner_a, note="")
    actions.adjust_points(tenant_a, members_a[0], 50, actor=owner_a, note="活动补发")
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(action="points.adjusted")
    assert (event.actor, event.details["delta"], event.details["note"]) == (owner_a, 50, "活动补发")


def test_another_tenants_member_cannot_be_credited(tenant_a, tenant_b, members_a, members_b):
    with pytest.raises(NotFound):
        actions.change_points(tenant_a, members_b[0], 100, "adjust")
    assert _book(tenant_b, members_b[0]) == (0, 0, 0)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_spends_never_go_below_zero(tenant_a):
    (alice,) = make_members(tenant_a, ["o-alice"])
    actions.change_points(tenant_a, alice, 100, "adjust")
    barrier = threading.Barrier(16)
    outcomes = []

    def spend():
        try:
            barrier.wait()
            actions.change_points(tenant_a, alice, -30, "adjust")
            outcomes.append("ok")
        except CouponError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=spend) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 3
    assert outcomes.count("insufficient_points") == 13
    assert _book(tenant_a, alice) == (10, 10, 10)
