"""tenant_b's data never influences tenant_a's results, even when the two look alike."""

from __future__ import annotations

from datetime import timedelta

import pytest

from catalog.models import Item
from profiles.models import Event, ItemAffinity, Member, MemberProfile, ProfileRun
from tenants.context import tenant_context
from tests.profiles.computation_data import END, run, seed, snapshot
from tests.profiles.conftest import auth

pytestmark = pytest.mark.django_db


def _plant_a_pair_in(tenant, first: str, then: str) -> None:
    """Half the members of ``tenant`` buy ``first`` and, a day later, ``then``: a pair no other tenant has."""
    with tenant_context(tenant):
        price = dict(Item.objects.values_list("sku", "price_fen"))
        events = []
        for n, member_id in enumerate(Member.objects.order_by("pk").values_list("pk", flat=True)[::2]):
            for k, (sku, days) in enumerate(((first, 9), (then, 8))):
                amount = price[sku]
                events.append(Event(event_id=f"planted-{n}-{k}", member_id=member_id, kind="purchase",
                                    ts=END - timedelta(days=days), amount_fen=amount,
                                    props={"amount_fen": amount, "items": [{"sku": sku, "qty": 1}]}))
        Event.objects.bulk_create(events)


def test_another_tenants_data_changes_nothing(tenant_a, tenant_b, tmp_path, api):
    seed(tenant_a, tmp_path, members=200)
    run(tenant_a)
    alone = snapshot(tenant_a)

    # The same seed in tenant_b (same openids, same items), plus a strong pair of its own.
    seed(tenant_b, tmp_path, members=200)
    _plant_a_pair_in(tenant_b, "LS-01", "GE-08")
    run(tenant_b)
    run(tenant_a)

    assert snapshot(tenant_a) == alone
    with tenant_context(tenant_a):
        assert not ItemAffinity.objects.filter(item_a__sku="LS-01", item_b__sku="GE-08").exists()
        assert ProfileRun.objects.count() == 2
        assert MemberProfile.objects.count() == 200
        member_a = Member.objects.get(openid=alone["profiles"][0][0])
    with tenant_context(tenant_b):
        assert ItemAffinity.objects.filter(item_a__sku="LS-01", item_b__sku="GE-08").exists()
        assert ProfileRun.objects.count() == 1
        member_b = Member.objects.get(openid=member_a.openid)
    # Look-alike members (same openid) see their own tenant's recommendations.
    recs_a = api.call("GET", "me/recommendations", **auth(member_a))[1]
    recs_b = api.call("GET", "me/recommendations", **auth(member_b))[1]
    with tenant_context(tenant_a):
        expected = [r for r in alone["recommendations"] if r[0] == member_a.openid]
    assert [(r["item"]["sku"], r["reason"]) for r in recs_a] == [(sku, reason) for _o, sku, _r, _s, reason in
                                                                 sorted(expected, key=lambda r: r[2])]
    assert recs_a != recs_b or not recs_a
