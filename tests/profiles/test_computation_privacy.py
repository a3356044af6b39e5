"""Who refused profiling gets nothing personalised; erased members are skipped; export and erasure cover it."""

from __future__ import annotations

import pytest

from profiles import actions
from profiles.computation import queries
from profiles.models import ItemAffinity, MemberProfile, Recommendation
from profiles.queries import export_member
from tenants.context import tenant_context
from tests.profiles.computation_data import Shop, run
from tests.profiles.conftest import auth

pytestmark = pytest.mark.django_db


def _shop(tenant):
    """Six buyers of 拿铁 then 黄油可颂, six of 美式咖啡 only, a refuser and a browser."""
    shop = Shop(tenant)
    buyers = [shop.member(f"o_buyer_{n}") for n in range(6)]
    for n, m in enumerate(buyers):
        shop.buy(m, ["CF-01"], days_ago=40 + n)
        shop.buy(m, ["BK-01"], days_ago=38 + n)
        shop.buy(m, ["CF-02"], days_ago=20 + n)
    for n in range(6):
        shop.buy(shop.member(f"o_americano_{n}"), ["CF-02"], days_ago=15 + n)
    refuser = shop.member("o_refuser", consent_profiling=False)
    for days in (30, 12, 3):
        shop.buy(refuser, ["CF-01", "BK-02"], days_ago=days)
    browser = shop.member("o_browser")
    shop.view(browser, "BK-02", days_ago=2)
    return shop, buyers, refuser, browser


def test_a_member_who_refused_profiling_keeps_plain_facts_only(tenant_a, api):
    shop, buyers, refuser, _browser = _shop(tenant_a)
    result = run(tenant_a)
    with tenant_context(tenant_a):
        p = MemberProfile.objects.get(member=refuser)
        recs = Recommendation.objects.filter(member=refuser).count()
        pairs = set(ItemAffinity.objects.values_list("item_a__sku", "item_b__sku"))
    assert (p.profiled, p.frequency, p.monetary_fen, p.recency_days) == (False, 3, 3 * (2800 + 1800), 3)
    assert (p.r_score, p.f_score, p.m_score, p.rfm_segment, p.cluster, p.cluster_label, p.interest_tags,
            p.propensity, p.predicted_spend_fen) == (None, None, None, "", None, "", [], None, None)
    assert recs == 0
    # Their three 拿铁 + 肉桂卷 baskets taught the item pairs nothing.
    assert ("CF-01", "BK-01") in pairs and ("CF-01", "BK-02") not in pairs
    assert result.stats["refused"] == 1 and result.stats["profiled"] == 13

    status, body, _ = api.call("GET", "me/recommendations", **auth(refuser))
    assert (status, body) == (200, [])
    status, body, _ = api.call("GET", "me", **auth(refuser))
    assert status == 200
    assert body["profile"]["profiled"] is False
    assert (body["profile"]["rfm_segment"], body["profile"]["cluster_label"], body["profile"]["interest_tags"]) == (
        None, None, [])


def test_withdrawing_consent_hides_the_last_runs_results_at_once(tenant_a, api):
    _shop_, buyers, _refuser, _browser = _shop(tenant_a)
    run(tenant_a)
    member = buyers[0]
    status, before, _ = api.call("GET", "me/recommendations", **auth(member))
    assert status == 200 and before
    assert before[0]["reason"] and set(before[0]["item"]) == {"sku", "name", "category", "price_fen"}

    actions.set_consent(tenant_a, member=member, profiling=False)

    assert api.call("GET", "me/recommendations", **auth(member))[1] == []
    assert api.call("GET", "me", **auth(member))[1]["profile"]["profiled"] is False
    with tenant_context(tenant_a):
        assert queries.profile_card(member).personal is False
        # Gone from the database too, not only hidden: segments read these rows directly.
        assert not Recommendation.objects.filter(member=member).exists()
        p = MemberProfile.objects.get(member=member)
        assert (p.profiled, p.cluster, p.cluster_label, p.rfm_segment, p.propensity, p.interest_tags) == (
            False, None, "", "", None, [])
        assert p.frequency == 3  # the plain facts stay
        assert Recommendation.objects.filter(member=buyers[1]).exists()


def test_erased_members_are_skipped_and_their_rows_go(tenant_a):
    _shop_, buyers, _refuser, _browser = _shop(tenant_a)
    run(tenant_a)
    gone = buyers[0]
    with tenant_context(tenant_a):
        exported = export_member(gone)
    assert exported["profile"]["frequency"] == 3 and exported["profile"]["profiled"] is True
    assert exported["recommendations"] and all(r["reason"] for r in exported["recommendations"])

    actions.erase_member(tenant_a, member=gone)
    with tenant_context(tenant_a):
        assert not MemberProfile.objects.filter(member=gone).exists()
        assert not Recommendation.objects.filter(member=gone).exists()
    result = run(tenant_a)
    with tenant_context(tenant_a):
        assert not MemberProfile.objects.filter(member=gone).exists()
        assert not Recommendation.objects.filter(member=gone).exists()
        assert MemberProfile.objects.count() == 13
    assert result.stats["members"] == 13


def test_recommendations_name_the_purchase_they_follow(tenant_a, api):
    shop, buyers, _refuser, _browser = _shop(tenant_a)
    newcomer = shop.member("o_newcomer")
    shop.buy(newcomer, ["CF-01"], days_ago=10)
    run(tenant_a)
    status, body, _ = api.call("GET", "me/recommendations", **auth(newcomer))
    assert status == 200
    assert body[0]["item"]["sku"] == "BK-01"
    assert body[0]["reason"] == "买过 拿铁 的顾客也常买 黄油可颂"
    assert body[0]["source"] == "copurchase"
    # 拿铁 itself was bought ten days ago: not excluded (only the last 7 days are), but not first either.
    assert [r["score"] for r in body] == sorted((r["score"] for r in body), reverse=True)


def test_the_very_recent_purchase_is_not_recommended(tenant_a, api):
    shop, buyers, _refuser, _browser = _shop(tenant_a)
    member = buyers[0]
    shop.buy(member, ["BK-01", "BK-02"], days_ago=1)
    run(tenant_a)
    skus = [r["item"]["sku"] for r in api.call("GET", "me/recommendations", **auth(member))[1]]
    assert skus and "BK-01" not in skus and "BK-02" not in skus


def test_items_taken_off_sale_after_the_run_are_left_out(tenant_a, api):
    shop, _buyers, _refuser, _browser = _shop(tenant_a)
    newcomer = shop.member("o_newcomer")
    shop.buy(newcomer, ["CF-01"], days_ago=10)
    run(tenant_a)
    with tenant_context(tenant_a):
        shop.items["BK-01"].active = False
        shop.items["BK-01"].save()
    skus = [r["item"]["sku"] for r in api.call("GET", "me/recommendations", **auth(newcomer))[1]]
    assert skus and "BK-01" not in skus


def test_before_the_first_run_the_profile_is_null_and_there_is_nothing_to_recommend(tenant_a, api):
    _shop_, buyers, _refuser, _browser = _shop(tenant_a)
    assert api.call("GET", "me", **auth(buyers[0]))[1]["profile"] is None
    assert api.call("GET", "me/recommendations", **auth(buyers[0]))[:2] == (200, [])
