"""GET /api/v1/items: active items of the caller's tenant only, filtered, keyset-paged."""

from __future__ import annotations

import pytest
from django.test import Client

from catalog.importing import import_items
from profiles import tokens
from profiles.models import Member
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db

MENU = (
    "sku,name,category,price_fen,active\n"
    "LATTE,拿铁,咖啡,2800,1\n"
    "MOCHA,摩卡,咖啡,3200,1\n"
    "OLD,旧品,咖啡,100,0\n"
    "CAKE,芝士蛋糕,甜点,3500,1\n"
    "TEA,绿茶,茶,1500,1\n"
).encode()


def token_for(tenant, openid="o_same_openid_in_both_000001"):
    with tenant_context(tenant):
        member = Member.objects.create(openid=openid)
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(tenant.pk, member.pk, tokens.ACCESS)}"}


@pytest.fixture
def catalogues(tenant_a, tenant_b):
    import_items(tenant_a, MENU)
    import_items(tenant_b, b"sku,name,category,price_fen\nLATTE,B latte,\xe5\x92\x96\xe5\x95\xa1,1\nBONLY,B,x,2\n")
    return tenant_a, tenant_b


def test_lists_active_items_of_the_callers_tenant(catalogues):
    tenant_a, tenant_b = catalogues
    response = Client().get("/api/v1/items", **token_for(tenant_a))
    assert response.status_code == 200
    assert response.json() == [
        {"sku": "CAKE", "name": "芝士蛋糕", "category": "甜点", "price_fen": 3500},
        {"sku": "LATTE", "name": "拿铁", "category": "咖啡", "price_fen": 2800},
        {"sku": "MOCHA", "name": "摩卡", "category": "咖啡", "price_fen": 3200},
        {"sku": "TEA", "name": "绿茶", "category": "茶", "price_fen": 1500},
    ]
    assert "X-Next-After" not in response
    response_b = Client().get("/api/v1/items", **token_for(tenant_b))
    assert response_b.json() == [
        {"sku": "BONLY", "name": "B", "category": "x", "price_fen": 2},
        {"sku": "LATTE", "name": "B latte", "category": "咖啡", "price_fen": 1},
    ]


def test_category_filter(catalogues):
    tenant_a, tenant_b = catalogues
    headers = token_for(tenant_a)
    assert [i["sku"] for i in Client().get("/api/v1/items?category=咖啡", **headers).json()] == ["LATTE", "MOCHA"]
    assert Client().get("/api/v1/items?category=没有", **headers).json() == []
    # tenant_b has a 咖啡 category too; tenant_a's token never sees its items.
    assert [i["sku"] for i in Client().get("/api/v1/items?category=咖啡", **token_for(tenant_b)).json()] == ["LATTE"]


def test_pages_follow_x_next_after(catalogues):
    tenant_a, _ = catalogues
    headers = token_for(tenant_a)
    client = Client()
    first = client.get("/api/v1/items?limit=3", **headers)
    assert [i["sku"] for i in first.json()] == ["CAKE", "LATTE", "MOCHA"]
    assert first["X-Next-After"] == "MOCHA"
    assert first["Link"] == '<http://testserver/api/v1/items?limit=3&after=MOCHA>; rel="next"'
    second = client.get(f"/api/v1/items?limit=3&after={first['X-Next-After']}", **headers)
    assert [i["sku"] for i in second.json()] == ["TEA"]
    assert "X-Next-After" not in second and "Link" not in second


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x"])
def test_bad_limit_is_a_contract_error(catalogues, query):
    tenant_a, _ = catalogues
    response = Client().get(f"/api/v1/items?{query}", **token_for(tenant_a))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert list(response.json()["error"]["details"]["fields"]) == ["limit"]


def test_needs_a_member_token(catalogues):
    assert Client().get("/api/v1/items").status_code == 401
    response = Client().get("/api/v1/items", HTTP_AUTHORIZATION="Bearer forged")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_schema_documents_the_endpoint(db):
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/v1/items"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"category", "after", "limit"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert set(operation["responses"]["200"]["headers"]) == {"X-Next-After", "Link"}
