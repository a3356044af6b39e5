"""Expiring points: first in, first out, never below zero, once per member however often it runs."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Sum
from django.test import Client
from django.utils import timezone

from campaigns import actions, tasks
from campaigns.actions.points import expiry_cutoff, months_before
from campaigns.models import LoyaltySettings, PointsEntry
from profiles.models import Member
from tenants.context import tenant_context
from tests.campaigns.conftest import make_members
from tests.fixtures import PASSWORD, postgres_only

pytestmark = pytest.mark.django_db

BEIJING = ZoneInfo("Asia/Shanghai")


def at(day: str, clock: str = "12:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=BEIJING)


def set_rule(tenant, months: int) -> None:
    actions.save_loyalty_settings(tenant, actor=None, points_per_yuan=1, tier_basis="points",
                                  new_member_template_id=None, points_expire_months=months)


def book(tenant, member, when: datetime, delta: int, reason: str, ref: str = "") -> PointsEntry:
    """A ledger change as if it had happened at ``when``."""
    entry = actions.change_points(tenant, member, delta, reason, ref=ref, note="test")
    with tenant_context(tenant):
        PointsEntry.objects.filter(pk=entry.pk).update(created_at=when)
    return entry


def balance_and_ledger(tenant, member) -> tuple[int, int, int]:
    with tenant_context(tenant):
        balance = Member.objects.get(pk=member.pk).points
        total = PointsEntry.objects.filter(member=member).aggregate(s=Sum("delta"))["s"] or 0
        last = PointsEntry.objects.filter(member=member).order_by("-id").first()
    return balance, total, last.balance_after if last else 0


def expiries(tenant, member=None) -> list[tuple[int, int, str]]:
    with tenant_context(tenant):
        qs = PointsEntry.objects.filter(reason="expire").order_by("id")
        if member is not None:
            qs = qs.filter(member=member)
        return list(qs.values_list("delta", "balance_after", "ref"))


def test_calendar_months_and_the_cutoff_in_beijing_days():
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2024, 3, 31), 1) == date(2024, 2, 29)
    assert months_before(date(2026, 1, 15), 13) == date(2024, 12, 15)
    assert months_before(date(2026, 1, 6), 12) == date(2025, 1, 6)
    # 00:30 on 6 January in Beijing is still 5 January in UTC; the Beijing day counts.
    assert expiry_cutoff(12, at("2026-01-06", "00:30")) == at("2025-01-06", "00:00")


def test_spends_use_the_oldest_points_first_and_only_what_is_left_of_them_expires(tenant_a, members_a):
    alice = members_a[0]
    set_rule(tenant_a, 12)
    book(tenant_a, alice, at("2025-01-05", "21:00"), 100, "earn", "O1")
    book(tenant_a, alice, at("2025-02-20"), 50, "earn", "O2")
    book(tenant_a, alice, at("2025-04-01"), -30, "exchange", "COUPON1")
    book(tenant_a, alice, at("2025-06-01"), 40, "earn", "O3")
    assert balance_and_ledger(tenant_a, alice) == (160, 160, 160)

    # Points earned on 5 January last through 5 January a year later.
    nothing = actions.expire_points(tenant_a, now=at("2026-01-05", "23:59"))
    assert (nothing.members, nothing.expired_members, nothing.expired_points) == (1, 0, 0)
    assert expiries(tenant_a) == []

    # Then what is left of those 100 expires: 30 of them were spent (oldest first).
    done = actions.expire_points(tenant_a, now=at("2026-01-06", "00:30"))
    assert (done.expired_members, done.expired_points) == (1, 70)
    assert expiries(tenant_a) == [(-70, 90, "2025-01-06")]
    # Running again (the same day, or the next) gives no second entry.
    assert actions.expire_points(tenant_a, now=at("2026-01-06", "09:00")).expired_points == 0
    assert actions.expire_points(tenant_a, now=at("2026-01-07")).expired_points == 0
    assert len(expiries(tenant_a)) == 1

    # A spend now takes the next-oldest points (the 50 of 20 February): 20 of them.
    book(tenant_a, alice, at("2026-01-15"), -20, "adjust")
    assert actions.expire_points(tenant_a, now=at("2026-02-21", "08:00")).expired_points == 30
    assert actions.expire_points(tenant_a, now=at("2026-06-02", "08:00")).expired_points == 40
    assert expiries(tenant_a) == [(-70, 90, "2025-01-06"), (-30, 40, "2025-02-21"), (-40, 0, "2025-06-02")]
    assert balance_and_ledger(tenant_a, alice) == (0, 0, 0)
    with tenant_context(tenant_a):
        # Expiry is not a refund: what was earned still counts toward points tiers.
        assert set(PointsEntry.objects.filter(reason="expire").values_list("tier_points", flat=True)) == {0}
        assert actions.points.tier_basis_value(alice, "points") == 190


def test_points_credited_by_a_staff_adjustment_expire_too_and_the_balance_never_goes_negative(
        tenant_a, members_a):
    alice, bob = members_a[:2]
    set_rule(tenant_a, 6)
    book(tenant_a, alice, at("2025-03-01"), 80, "adjust")
    book(tenant_a, alice, at("2025-05-01"), -80, "exchange", "COUPON1")  # all spent: nothing left to expire
    book(tenant_a, bob, at("2025-03-01"), 25, "adjust")
    book(tenant_a, bob, at("2025-09-10"), 15, "earn", "O1")
    done = actions.expire_points(tenant_a, now=at("2025-09-15"))
    assert (done.members, done.expired_members, done.expired_points) == (1, 1, 25)  # alice has no balance
    assert expiries(tenant_a, bob) == [(-25, 15, "2025-03-15")]
    assert balance_and_ledger(tenant_a, alice) == (0, 0, 0)
    assert balance_and_ledger(tenant_a, bob) == (15, 15, 15)


def test_never_expire_by_default_and_another_tenants_rule_is_its_own(tenant_a, tenant_b, members_a, members_b):
    for tenant, members in ((tenant_a, members_a), (tenant_b, members_b)):
        book(tenant, members[0], at("2024-01-01"), 100, "earn", "O1")
    with tenant_context(tenant_b):
        assert LoyaltySettings.objects.count() == 0
    assert actions.expire_points(tenant_b, now=at("2026-01-01")).expired_points == 0
    set_rule(tenant_a, 12)
    assert actions.expire_points(tenant_a, now=at("2026-01-01")).expired_points == 100
    assert expiries(tenant_b) == []
    assert balance_and_ledger(tenant_b, members_b[0]) == (100, 100, 100)
    assert balance_and_ledger(tenant_a, members_a[0]) == (0, 0, 0)


def test_chunks_cover_every_member_once(tenant_a):
    members = make_members(tenant_a, [f"o-{i}" for i in range(7)])
    set_rule(tenant_a, 1)
    for i, member in enumerate(members):
        book(tenant_a, member, at("2025-01-01"), 10 + i, "earn", "O1")
        if i:
            book(tenant_a, member, at("2025-03-01"), -i, "adjust")
    first = actions.expire_points_chunk(tenant_a, now=at("2025-04-01"), limit=3)
    assert (first.members, first.expired_members, first.next_after) == (3, 3, members[2].pk)
    total = actions.expire_points(tenant_a, now=at("2025-04-01"), limit=3)
    assert (total.members, total.expired_members, total.expired_points) == (4, 4, 40)  # the rest: 4 × 10
    assert [d for d, _, _ in expiries(tenant_a)] == [-10] * 7
    for member in members:
        assert balance_and_ledger(tenant_a, member) == (0, 0, 0)


def test_the_beat_task_fans_out_and_chains_its_chunks(tenant_a, tenant_b, members_a, members_b,
                                                      django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(actions.points, "EXPIRY_CHUNK", 2)  # three members: two chained chunks
    set_rule(tenant_a, 12)
    set_rule(tenant_b, 24)
    long_ago = timezone.now() - timedelta(days=500)
    for tenant, members in ((tenant_a, members_a), (tenant_b, members_b)):
        for member in members:
            book(tenant, member, long_ago, 30, "earn", "O1")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_points_everywhere.delay().get() == 2
    assert [d for d, _, _ in expiries(tenant_a)] == [-30, -30, -30]
    assert expiries(tenant_b) == []  # 500 days is inside its 24 months
    with django_capture_on_commit_callbacks(execute=True):
        tasks.expire_points_everywhere.delay().get()
    assert len(expiries(tenant_a)) == 3


def test_the_ledger_page_shows_expired_points_and_the_rule(tenant_a, members_a, owner_a):
    alice = members_a[0]
    set_rule(tenant_a, 12)
    book(tenant_a, alice, at("2025-01-05"), 100, "earn", "O1")
    actions.expire_points(tenant_a, now=at("2026-01-06", "00:30"))
    client = Client()
    assert client.login(username=owner_a.username, password=PASSWORD)
    page = client.get(f"/console/shop-a/coupons/members/{alice.pk}/points/").content.decode()
    assert "积分过期" in page
    assert 'data-expired-before="2025-01-06"' in page
    assert "2025-01-06 之前获得、未用完的积分" in page
    assert "积分有效期 12 个月" in page


def test_the_rule_is_edited_in_the_loyalty_settings(tenant_a, owner_a):
    client = Client()
    assert client.login(username=owner_a.username, password=PASSWORD)
    rules = {"form": "rules", "points_per_yuan": "1", "tier_basis": "points", "return_coupon_on_refund": "full_refund"}
    too_long = client.post("/console/shop-a/coupons/loyalty/", {**rules, "points_expire_months": "121"})
    assert too_long.status_code == 200
    assert client.post("/console/shop-a/coupons/loyalty/", {**rules, "points_expire_months": "18"}).status_code == 302
    # A post without the field (an older page) keeps the rule.
    assert client.post("/console/shop-a/coupons/loyalty/", {"form": "rules", "points_per_yuan": "2",
                                                            "tier_basis": "points"}).status_code == 302
    with tenant_context(tenant_a):
        saved = LoyaltySettings.objects.get()
    assert (saved.points_per_yuan, saved.points_expire_months) == (2, 18)
    with pytest.raises(ValidationError) as refused:
        set_rule(tenant_a, -1)
    assert "points_expire_months" in refused.value.message_dict


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_expire_once_per_member(tenant_a):
    members = make_members(tenant_a, [f"o-{i}" for i in range(40)])
    set_rule(tenant_a, 12)
    for member in members:
        book(tenant_a, member, at("2025-01-01"), 100, "earn", "O1")
        book(tenant_a, member, at("2025-06-01"), -10, "exchange", "C1")
    barrier = threading.Barrier(2)
    results = []

    def run():
        try:
            barrier.wait()
            results.append(actions.expire_points(tenant_a, now=at("2026-03-01"), limit=7))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2  # neither run failed (a thread's exception would only be a warning)
    # However the two runs shared the chunks between them, together they expired each member once.
    assert (sum(r.expired_members for r in results), sum(r.expired_points for r in results)) == (40, 3600)
    with tenant_context(tenant_a):
        per_member = PointsEntry.objects.filter(reason="expire").values("member").annotate(n=Count("id"))
        assert sorted(row["n"] for row in per_member) == [1] * 40
    for member in members:
        assert expiries(tenant_a, member) == [(-90, 0, "2025-03-01")]
        assert balance_and_ledger(tenant_a, member) == (0, 0, 0)
