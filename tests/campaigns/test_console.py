"""Console — Coupons: pages per role, validation in words, grants with audit, isolation."""

from __future__ import annotations

import pytest
from django.test import Client

from campaigns import actions
from campaigns.models import Coupon, CouponTemplate, GrantJob, LoyaltySettings, PointsEntry, Tier
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.campaigns.conftest import make_template
from tests.fixtures import PASSWORD, ROLES

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def url(path: str = "", slug: str = "shop-a") -> str:
    return f"/console/{slug}/coupons/{path}"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_pages_and_only_analysts_cannot_write(tenant_a, members_a, staff_factory, role):
    user = staff_factory(tenant_a, f"{role}-a", role).user
    template = make_template(tenant_a, name="满100减20")
    actions.claim_coupon(tenant_a, template.pk, members_a[0])
    client = login(user)
    for path in ("", "new/", f"{template.pk}/", "loyalty/", f"members/{members_a[0].pk}/points/"):
        response = client.get(url(path))
        assert response.status_code == 200, path
    assert "满100减20" in client.get(url()).content.decode()
    response = client.post(url(f"{template.pk}/state/"), {"state": "paused"})
    with tenant_context(tenant_a):
        state = CouponTemplate.objects.get(pk=template.pk).state
    if role == "analyst":
        assert (response.status_code, state) == (403, "active")
    else:
        assert (response.status_code, state) == (302, "paused")


def test_create_explains_bad_rules_in_words_and_saves_good_ones(tenant_a, owner_a):
    client = login(owner_a)
    bad = client.post(url("new/"), {"name": "满减", "kind": "cash_off", "value_yuan": "20", "per_member_limit": "1",
                                    "valid_days": "30"})
    assert bad.status_code == 200
    assert "满减券需要使用门槛" in bad.content.decode()
    good = client.post(url("new/"), {"name": "满减", "kind": "cash_off", "value_yuan": "20", "threshold_yuan": "100",
                                     "per_member_limit": "1", "valid_days": "30", "stock": "500",
                                     "channels": ["self_claim", "staff"], "activate": "1"})
    assert good.status_code == 302
    with tenant_context(tenant_a):
        t = CouponTemplate.objects.get()
    assert (t.value, t.threshold_fen, t.stock, t.state, t.channels) == (2000, 10000, 500, "active",
                                                                       ["self_claim", "staff"])


def test_an_issued_template_keeps_its_value(tenant_a, members_a, owner_a):
    template = make_template(tenant_a, value=2000)
    actions.claim_coupon(tenant_a, template.pk, members_a[0])
    client = login(owner_a)
    response = client.post(url(f"{template.pk}/edit/"), {
        "name": "改名", "kind": "cash_off", "value_yuan": "90", "threshold_yuan": "100", "per_member_limit": "3",
        "valid_days": "30", "stock": "50"})
    assert response.status_code == 302
    with tenant_context(tenant_a):
        t = CouponTemplate.objects.get(pk=template.pk)
    assert (t.name, t.value, t.per_member_limit, t.stock) == ("改名", 2000, 3, 50)


def test_grant_to_one_member_and_a_pasted_list_with_progress(tenant_a, tenant_b, members_a, members_b, owner_a,
                                                             django_capture_on_commit_callbacks):
    template = make_template(tenant_a)
    client = login(owner_a)
    response = client.post(url(f"{template.pk}/grant/"), {"mode": "one", "openid": "o-alice", "reason": "生日礼",
                                                          "nonce": "n1"})
    assert response.status_code == 302
    # A double-submitted form (same nonce) grants once.
    client.post(url(f"{template.pk}/grant/"), {"mode": "one", "openid": "o-alice", "reason": "生日礼", "nonce": "n1"})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(f"{template.pk}/grant/"), {"mode": "list", "openids": "o-bob\no-carol\no-zed",
                                                              "reason": "门店活动", "nonce": "n2"})
    with tenant_context(tenant_a):
        job = GrantJob.objects.get()
        holders = sorted(Coupon.objects.values_list("member__openid", "channel"))
        granted = AuditEvent.objects.get(action="coupon.granted")
    assert response["Location"] == url(f"jobs/{job.pk}/")
    progress = client.get(url(f"jobs/{job.pk}/?format=json")).json()
    assert (progress["state"], progress["granted"], progress["not_found"], progress["percent"]) == ("done", 2, 1, 100)
    assert holders == [("o-alice", "staff"), ("o-bob", "staff"), ("o-carol", "staff")]
    assert (granted.actor, granted.details["reason"], granted.details["openid"]) == (owner_a, "生日礼", "o-alice")
    with tenant_context(tenant_b):
        assert not Coupon.objects.exists()


def test_revoke_from_the_console(tenant_a, members_a, owner_a):
    template = make_template(tenant_a)
    coupon = actions.claim_coupon(tenant_a, template.pk, members_a[0]).coupon
    client = login(owner_a)
    assert client.post(url(f"issued/{coupon.pk}/revoke/"), {"reason": "误领"}).status_code == 302
    with tenant_context(tenant_a):
        assert Coupon.objects.get(pk=coupon.pk).state == "revoked"


def test_another_tenants_pages_are_404(tenant_a, tenant_b, members_b, owner_a):
    template_b = make_template(tenant_b)
    coupon_b = actions.claim_coupon(tenant_b, template_b.pk, members_b[0]).coupon
    client = login(owner_a)
    assert client.get(url(f"{template_b.pk}/")).status_code == 404
    assert client.get(url(f"members/{members_b[0].pk}/points/")).status_code == 404
    assert client.post(url(f"issued/{coupon_b.pk}/revoke/"), {"reason": "x"}).status_code == 404
    assert client.get(url("", slug="shop-b")).status_code == 404
    with tenant_context(tenant_b):
        assert Coupon.objects.get(pk=coupon_b.pk).state == "unused"


def test_points_rules_tiers_and_a_member_adjustment(tenant_a, members_a, owner_a, django_capture_on_commit_callbacks):
    client = login(owner_a)
    assert client.post(url("loyalty/"), {"form": "rules", "points_per_yuan": "3", "tier_basis": "points"}
                       ).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url("loyalty/"), {"form": "tier", "name": "金卡", "threshold": "100",
                                             "earn_multiplier_pct": "120"}).status_code == 302
    clash = client.post(url("loyalty/"), {"form": "tier", "name": "银卡", "threshold": "100",
                                          "earn_multiplier_pct": "100"})
    assert "已有等级使用这个门槛" in clash.content.decode()
    alice = members_a[0]
    assert client.post(url(f"members/{alice.pk}/points/"), {"delta": "50", "note": "补偿"}).status_code == 302
    refused = client.post(url(f"members/{alice.pk}/points/"), {"delta": "-80", "note": "扣减"})
    assert "积分不足" in refused.content.decode()
    with tenant_context(tenant_a):
        assert LoyaltySettings.objects.get().points_per_yuan == 3
        assert list(Tier.objects.values_list("name", "earn_multiplier_pct")) == [("金卡", 120)]
        assert list(PointsEntry.objects.values_list("delta", "balance_after", "actor")) == [(50, 50, owner_a.pk)]
