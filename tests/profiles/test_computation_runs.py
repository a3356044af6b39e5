"""Runs: idempotent, one at a time per tenant, failures recorded; the task, the command, the console."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client

from profiles import tasks
from profiles.computation import recompute
from profiles.models import ItemAffinity, MemberProfile, ProfileRun, Recommendation
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.fixtures import PASSWORD, ROLES, postgres_only
from tests.profiles.computation_data import END, Shop, run, seed, snapshot

pytestmark = pytest.mark.django_db


def _counts(tenant):
    with tenant_context(tenant):
        return (MemberProfile.objects.count(), ItemAffinity.objects.count(), Recommendation.objects.count(),
                ProfileRun.objects.count())


def test_a_rerun_writes_the_same_rows_and_no_duplicates(tenant_a, tmp_path):
    seed(tenant_a, tmp_path, members=200)
    run(tenant_a)
    first, counts = snapshot(tenant_a), _counts(tenant_a)
    run(tenant_a)
    assert snapshot(tenant_a) == first
    assert _counts(tenant_a) == (*counts[:3], 2)
    assert counts[0] == 200 and counts[1] > 0 and counts[2] > 0


def _tiny(tenant):
    shop = Shop(tenant)
    for n in range(4):
        member = shop.member(f"o_{n}")
        shop.buy(member, ["CF-01", "BK-01"], days_ago=5 + n)
    for n in range(2):
        shop.buy(shop.member(f"o_americano_{n}"), ["CF-02"], days_ago=9 + n)
    return shop


@pytest.mark.skipif(settings.USING_POSTGRES, reason="PostgreSQL uses the advisory lock (the next test)")
def test_a_second_run_while_one_holds_the_tenant_is_skipped(tenant_a, tenant_b):
    _tiny(tenant_a)
    _tiny(tenant_b)
    # What the first run holds on this backend (on PostgreSQL the advisory lock; see the next test).
    cache.add(f"profiles:recompute:{tenant_a.pk}", "1", 60)
    assert recompute.recompute(tenant_a, now=END) is None
    assert _counts(tenant_a) == (0, 0, 0, 0)
    # Another tenant is not held up.
    assert recompute.recompute(tenant_b, now=END).state == "succeeded"
    cache.delete(f"profiles:recompute:{tenant_a.pk}")
    assert recompute.recompute(tenant_a, now=END).state == "succeeded"


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_advisory_lock_keeps_runs_apart(tenant_a):
    import threading

    _tiny(tenant_a)
    held, release, outcome = threading.Event(), threading.Event(), {}

    def holder():
        from django.db import connection

        with tenant_context(tenant_a), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [recompute.LOCK_NAMESPACE, tenant_a.pk])
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        outcome["busy"] = recompute.recompute(tenant_a, now=END)
    finally:
        release.set()
        thread.join()
    assert outcome["busy"] is None
    assert recompute.recompute(tenant_a, now=END).state == "succeeded"


def test_a_failed_run_is_recorded_and_leaves_the_previous_results(tenant_a, monkeypatch):
    _tiny(tenant_a)
    run(tenant_a)
    before = snapshot(tenant_a)

    def broken(*args, **kwargs):
        raise ValueError("no clusters today")

    monkeypatch.setattr(recompute.clusters, "cluster", broken)
    failed = recompute.recompute(tenant_a, now=END)
    assert failed.state == "failed" and failed.error == "ValueError: no clusters today"
    assert failed.finished_at is not None and failed.stats == {}
    assert snapshot(tenant_a) == before


def test_the_task_runs_in_its_tenant_and_the_fan_out_reaches_every_active_tenant(tenant_a, tenant_b):
    _tiny(tenant_a)
    _tiny(tenant_b)
    result = tasks.recompute_profiles.delay(tenant_a.pk, "console").get()
    assert result["state"] == "succeeded"
    assert _counts(tenant_a)[0] == 6 and _counts(tenant_b) == (0, 0, 0, 0)
    assert tasks.recompute_profiles_everywhere.delay().get() == 2
    with tenant_context(tenant_b):
        assert list(ProfileRun.objects.values_list("trigger", "state")) == [("beat", "succeeded")]
    with tenant_context(tenant_a):
        assert sorted(ProfileRun.objects.values_list("trigger", flat=True)) == ["beat", "console"]


def test_the_command_prints_the_runs_metrics(tenant_a, tmp_path):
    seed(tenant_a, tmp_path, members=200)
    out = io.StringIO()
    call_command("recompute_profiles", "shop-a", "--as-of", END.isoformat(), stdout=out, verbosity=0)
    text = out.getvalue()
    with tenant_context(tenant_a):
        stored = ProfileRun.objects.get()
    assert stored.trigger == "command" and stored.state == "succeeded"
    assert f"会员 200（画像 {stored.stats['profiled']}" in text
    assert f"留出集 AUC {stored.stats['propensity']['auc']}" in text
    assert f"轮廓系数 {stored.stats['clusters']['silhouette']}" in text
    for cluster in stored.stats["clusters"]["items"]:
        assert cluster["label"] in text
    with pytest.raises(CommandError, match="没有标识为 nope 的商户"):
        call_command("recompute_profiles", "nope", stdout=io.StringIO())


def _console(tenant, staff_factory, role):
    membership = staff_factory(tenant, f"{role}-{tenant.slug}", role)
    client = Client()
    assert client.login(username=membership.user.username, password=PASSWORD)
    return client


@pytest.mark.parametrize("role", ROLES)
def test_the_overview_shows_the_last_run_and_operators_up_may_recompute(tenant_a, tenant_b, staff_factory, role,
                                                                        django_capture_on_commit_callbacks):
    _tiny(tenant_a)
    run(tenant_a)
    client = _console(tenant_a, staff_factory, role)
    page = client.get("/console/shop-a/members/profiles/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-stat="profiled">6<' in html
    assert "拿铁" in html and "黄油可颂" in html  # the pair
    assert ("data-recompute" in html) == (role != "analyst")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/console/shop-a/members/profiles/recompute/")
    with tenant_context(tenant_a):
        runs = ProfileRun.objects.count()
        audited = AuditEvent.objects.filter(action="profiles.recompute_requested").count()
    if role == "analyst":
        assert response.status_code == 403 and (runs, audited) == (1, 0)
    else:
        assert response.status_code == 302 and (runs, audited) == (2, 1)
    # Another tenant's overview is the same 404 as an unknown one.
    assert client.get("/console/shop-b/members/profiles/").status_code == 404
    assert client.post("/console/shop-b/members/profiles/recompute/").status_code == 404
    with tenant_context(tenant_b):
        assert ProfileRun.objects.count() == 0


def test_the_member_page_shows_the_profile_card(tenant_a, staff_factory):
    shop = _tiny(tenant_a)
    refuser = shop.member("o_refuser", consent_profiling=False)
    shop.buy(refuser, ["CF-02"], days_ago=3)
    run(tenant_a)
    client = _console(tenant_a, staff_factory, "analyst")
    with tenant_context(tenant_a):
        member = MemberProfile.objects.filter(profiled=True).select_related("member").first().member
    html = client.get(f"/console/shop-a/members/{member.pk}/").content.decode()
    assert "data-profile-card" in html and "data-segment=" in html and "推荐商品" in html
    html = client.get(f"/console/shop-a/members/{refuser.pk}/").content.decode()
    assert "data-not-profiled" in html and "data-segment=" not in html and "推荐商品" not in html
