"""The Mini Program coupon API: contract shapes, errors, Idempotency-Key, cart quotes, isolation."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from campaigns import actions
from campaigns.models import Coupon
from catalog.models import Category, Item
from profiles import tokens
from tenants.context import tenant_context
from tests.campaigns.conftest import make_template

pytestmark = pytest.mark.django_db


def call(method, path, member=None, **headers):
    if member is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {tokens.issue(member.tenant_id, member.pk, tokens.ACCESS)}"
    response = Client().generic(method, f"/api/v1/{path}", content_type="application/json", **headers)
    return response.status_code, (json.loads(response.content) if response.content else None)


def test_list_shows_claimable_templates_of_the_callers_tenant_only(tenant_a, tenant_b, members_a, members_b):
    shown = make_template(tenant_a, name="A 满减", stock=10)
    make_template(tenant_a, name="A 草稿", activate=False)
    make_template(tenant_a, name="A 员工券", channels=["staff"])
    make_template(tenant_b, name="B 满减")
    actions.claim_coupon(tenant_a, shown.pk, members_a[0])
    status, body = call("GET", "coupons", members_a[0])
    assert status == 200
    assert [(t["name"], t["remaining"], t["claimed_by_me"]) for t in body] == [("A 满减", 9, 1)]
    assert body[0]["kind"] == "cash_off" and body[0]["threshold_fen"] == 10000
    status, body = call("GET", "coupons", members_b[0])
    assert [t["name"] for t in body] == ["B 满减"]


def test_claim_answers_201_then_409s_with_contract_codes(tenant_a, members_a):
    template = make_template(tenant_a, stock=2, per_member_limit=1)
    status, body = call("POST", f"coupons/{template.pk}/claim", members_a[0])
    assert status == 201
    assert (body["state"], body["template"]["id"], len(body["code"])) == ("unused", template.pk, 16)
    status, body = call("POST", f"coupons/{template.pk}/claim", members_a[0])
    assert (status, body["error"]["code"]) == (409, "limit_reached")
    assert call("POST", f"coupons/{template.pk}/claim", members_a[1])[0] == 201
    status, body = call("POST", f"coupons/{template.pk}/claim", members_a[2])
    assert (status, body["error"]["code"]) == (409, "sold_out")
    actions.set_template_state(tenant_a, template.pk, "paused")
    status, body = call("POST", f"coupons/{template.pk}/claim", members_a[2])
    assert (status, set(body["error"])) == (409, {"code", "message", "details"})
    assert body["error"]["code"] == "not_active"


def test_idempotency_key_replays_the_same_coupon_with_200(tenant_a, members_a):
    template = make_template(tenant_a, per_member_limit=5)
    s1, first = call("POST", f"coupons/{template.pk}/claim", members_a[0], HTTP_IDEMPOTENCY_KEY="tap-7")
    s2, again = call("POST", f"coupons/{template.pk}/claim", members_a[0], HTTP_IDEMPOTENCY_KEY="tap-7")
    assert (s1, s2, again["id"], again["code"]) == (201, 200, first["id"], first["code"])
    with tenant_context(tenant_a):
        assert Coupon.objects.count() == 1


def test_another_tenants_template_is_404_and_untouched(tenant_a, tenant_b, members_a):
    template_b = make_template(tenant_b)
    status, body = call("POST", f"coupons/{template_b.pk}/claim", members_a[0])
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = call("POST", "coupons/999999/claim", members_a[0])
    assert (status, body["error"]["code"]) == (404, "not_found")
    with tenant_context(tenant_b):
        assert not Coupon.objects.exists()


def test_claim_needs_a_member_token(tenant_a):
    template = make_template(tenant_a)
    status, body = call("POST", f"coupons/{template.pk}/claim")
    assert status == 401


def test_an_odd_accept_header_still_gets_the_json_answer(tenant_a, members_a):
    template = make_template(tenant_a)
    status, body = call("POST", f"coupons/{template.pk}/claim", members_a[0], HTTP_ACCEPT="text/html")
    assert (status, body["template"]["id"]) == (201, template.pk)
    status, body = call("POST", "coupons/999999/claim", members_a[0], HTTP_ACCEPT="application/xml")
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_my_coupons_are_mine_and_priced_for_a_cart(tenant_a, tenant_b, members_a, members_b):
    with tenant_context(tenant_a):
        drinks = Category.objects.create(name="饮品")
        food = Category.objects.create(name="甜点")
        Item.objects.create(sku="LATTE", name="拿铁", category=drinks, price_fen=3200)
        Item.objects.create(sku="CAKE", name="蛋糕", category=food, price_fen=2800)
    big = make_template(tenant_a, name="满100减20")
    drinks_only = make_template(tenant_a, name="饮品8折", kind="percent_off", value=20, threshold_fen=0,
                                category_ids=[drinks.pk])
    alice, bob = members_a[0], members_a[1]
    actions.claim_coupon(tenant_a, big.pk, alice)
    actions.claim_coupon(tenant_a, drinks_only.pk, alice)
    actions.claim_coupon(tenant_a, big.pk, bob)
    actions.claim_coupon(tenant_b, make_template(tenant_b).pk, members_b[0])

    status, body = call("GET", "me/coupons?lines=LATTE:2,CAKE:1", alice)
    assert status == 200
    quotes = {c["template"]["name"]: c["quote"] for c in body}
    assert quotes["满100减20"] == {"applies": False, "discount_fen": 0, "eligible_subtotal_fen": 9200,
                                   "reason": "below_threshold"}
    assert quotes["饮品8折"] == {"applies": True, "discount_fen": 1280, "eligible_subtotal_fen": 6400, "reason": ""}
    status, body = call("GET", "me/coupons?lines=LATTE:4", alice)
    assert {c["template"]["name"]: c["quote"]["discount_fen"] for c in body} == {"满100减20": 2000, "饮品8折": 2560}
    status, body = call("GET", "me/coupons?lines=NOPE:1", alice)
    assert (status, body["error"]["code"], body["error"]["details"]) == (400, "unknown_sku", {"skus": ["NOPE"]})
    status, body = call("GET", "me/coupons?lines=LATTE", alice)
    assert (status, body["error"]["code"]) == (400, "invalid_lines")
    status, body = call("GET", "me/coupons", members_b[0])
    assert [c["template"]["name"] for c in body] == ["满100减20"] and len(body) == 1
    status, body = call("GET", "me/coupons?state=used", alice)
    assert (status, body) == (200, [])


def test_points_exchange_and_balance(tenant_a, members_a):
    template = make_template(tenant_a, channels=["points"], points_cost=100)
    alice = members_a[0]
    status, body = call("POST", f"coupons/{template.pk}/exchange", alice)
    assert (status, body["error"]["code"]) == (409, "insufficient_points")
    actions.change_points(tenant_a, alice, 150, "adjust")
    status, body = call("POST", f"coupons/{template.pk}/exchange", alice)
    assert (status, body["channel"]) == (201, "points")
    status, body = call("GET", "me/points", alice)
    assert (body["points"], [e["delta"] for e in body["ledger"]]) == (50, [-100, 150])


def test_an_erased_members_token_claims_nothing(tenant_a, members_a):
    """The claim view loads no member; its statement must refuse an erased one by itself."""
    from profiles.actions import erase_member

    template = make_template(tenant_a, stock=5, per_member_limit=1)
    token = tokens.issue(tenant_a.pk, members_a[0].pk, tokens.ACCESS)
    erase_member(tenant_a, member=members_a[0])
    response = Client().post(f"/api/v1/coupons/{template.pk}/claim", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_token")
    with tenant_context(tenant_a):
        template.refresh_from_db()
        assert (template.issued, Coupon.objects.count()) == (0, 0)
    assert call("POST", f"coupons/{template.pk}/claim", members_a[1])[0] == 201


def test_a_suspended_tenant_is_refused_at_once_in_the_process_that_suspended_it(tenant_a, members_a):
    from tenants.actions import set_tenant_status

    template = make_template(tenant_a, stock=5)
    assert call("POST", f"coupons/{template.pk}/claim", members_a[0])[0] == 201  # the tenant is now remembered
    set_tenant_status(tenant_a, "suspended")
    status, body = call("POST", f"coupons/{template.pk}/claim", members_a[1])
    assert (status, body["error"]["code"]) == (403, "tenant_suspended")


def test_another_process_sees_a_suspension_within_the_tenant_cache_seconds(tenant_a, members_a, settings):
    """Only this process forgets on suspension; others keep the tenant for TENANT_CACHE_SECONDS."""
    from tenants.models import Tenant

    template = make_template(tenant_a, stock=5)
    assert call("POST", f"coupons/{template.pk}/claim", members_a[0])[0] == 201
    Tenant.objects.filter(pk=tenant_a.pk).update(status="suspended")  # as another process would
    assert call("POST", f"coupons/{template.pk}/claim", members_a[1])[0] == 201
    settings.TENANT_CACHE_SECONDS = 0
    from tenants.resolvers import forget_tenant

    forget_tenant()  # what the expiry of the remembered entry amounts to
    status, body = call("POST", f"coupons/{template.pk}/claim", members_a[2])
    assert (status, body["error"]["code"]) == (403, "tenant_suspended")


def test_a_claim_commits_before_its_answer_is_built(tenant_a, members_a, monkeypatch):
    """The stock row of a flash sale is locked from the claim to its commit: nothing else may wait inside."""
    from django.db import connection

    from campaigns import api

    seen = []
    real = api.coupon_data

    def recording(*args, **kwargs):
        seen.append(len(connection.savepoint_ids))
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "coupon_data", recording)
    template = make_template(tenant_a, stock=5)
    # pytest-django wraps each test in a transaction; what matters is that the claim's own block closed.
    depth = len(connection.savepoint_ids)
    assert call("POST", f"coupons/{template.pk}/claim", members_a[0])[0] == 201
    assert seen == [depth]  # with the whole request as one unit, its savepoint would still be open here
