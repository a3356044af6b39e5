"""Who may change what: the owner changes credentials and staff; the others read; analysts never POST."""

from __future__ import annotations

import pytest

from tenants.context import tenant_context
from tenants.models import AuditEvent, MiniProgramApp, PayAccount, StaffMembership, Tenant
from tests.fixtures import PASSWORD, ROLES
from tests.tenants.conftest import console_routes, snapshot

pytestmark = pytest.mark.django_db


def _target(tenant_a):
    return StaffMembership.objects.get(tenant=tenant_a, user__username="target-op")


# (name, url under /console/shop-a/, body, proof that the change happened)
SETTINGS_POSTS = [
    ("profile", "settings/", lambda ctx: {"name": "Shop A Renamed"},
     lambda ctx: Tenant.objects.get(pk=ctx["tenant"].pk).name == "Shop A Renamed"),
    ("mini_program", "settings/mini-program/",
     lambda ctx: {"appid": "wxa0000000000000a1", "app_secret": "fresh-app-secret-0123456789"},
     lambda ctx: MiniProgramApp.objects.get(tenant=ctx["tenant"]).app_secret == "fresh-app-secret-0123456789"),
    ("pay", "settings/pay/", lambda ctx: {"mchid": "1900000109", "apiv3_key": "a" * 32},
     lambda ctx: PayAccount.objects.filter(tenant=ctx["tenant"], mchid="1900000109").exists()),
    ("staff_add", "settings/staff/",
     lambda ctx: {"username": "newcomer", "role": "operator", "password": PASSWORD},
     lambda ctx: StaffMembership.objects.filter(tenant=ctx["tenant"], user__username="newcomer").exists()),
    ("staff_role", "settings/staff/{target}/", lambda ctx: {"op": "role", "role": "manager"},
     lambda ctx: _target(ctx["tenant"]).role == "manager"),
    ("staff_deactivate", "settings/staff/{target}/", lambda ctx: {"op": "deactivate"},
     lambda ctx: not _target(ctx["tenant"]).is_active),
]

ALLOWED = {"owner": {name for name, *_ in SETTINGS_POSTS}, "manager": set(), "operator": set(), "analyst": set()}


@pytest.fixture
def setup_a(tenant_a, tenant_b, staff_factory, owner_a, owner_b):
    staff_factory(tenant_a, "target-op", "operator")
    return {"tenant": tenant_a, "target": _target(tenant_a).pk}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "url", "body", "changed"), SETTINGS_POSTS, ids=[p[0] for p in SETTINGS_POSTS])
def test_settings_posts_by_role(client, setup_a, staff_factory, tenant_b, role, name, url, body, changed):
    user = StaffMembership.objects.get(tenant=setup_a["tenant"], role="owner").user
    if role != "owner":
        user = staff_factory(setup_a["tenant"], f"{role}-a", role).user
    client.force_login(user)
    before_a, before_b = snapshot(setup_a["tenant"]), snapshot(tenant_b)
    response = client.post(f"/console/shop-a/{url.format(target=setup_a['target'])}", body(setup_a))
    if name in ALLOWED[role]:
        assert response.status_code == 302, response.content.decode()[:2000]
        assert changed(setup_a)
        with tenant_context(setup_a["tenant"]):
            assert AuditEvent.objects.filter(actor=user).count() == 1
    else:
        assert response.status_code == 403
        text = response.content.decode()
        assert ("你的角色只能查看，不能修改。" if role == "analyst" else "只有商户所有者可以修改这些设置。") in text
        assert not changed(setup_a)
        assert snapshot(setup_a["tenant"]) == before_a
    assert snapshot(tenant_b) == before_b


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_settings_pages_and_only_the_owner_gets_forms(client, setup_a, staff_factory, role):
    user = staff_factory(setup_a["tenant"], f"{role}-reader", role).user
    client.force_login(user)
    for url in ("settings/", "settings/mini-program/", "settings/pay/", "settings/staff/", "settings/audit/"):
        response = client.get(f"/console/shop-a/{url}")
        assert response.status_code == 200, url
        html = response.content.decode()
        # Besides the top bar (language, logout), a page has forms only for the owner.
        forms = html.count('method="post"') - 2
        if role == "owner" and url != "settings/audit/":
            assert forms >= 1, url
        else:
            assert forms == 0, url
            if url != "settings/audit/":
                assert "只有商户所有者可以修改这些设置；你可以查看。" in html


def test_an_analyst_can_post_nowhere_in_the_console(client, setup_a, staff_factory, tenant_b):
    analyst = staff_factory(setup_a["tenant"], "analyst-a", "analyst").user
    client.force_login(analyst)
    before = snapshot(setup_a["tenant"])
    refused = {}
    for route in console_routes():
        response = client.post(route.url("shop-a"), {"name": "x", "op": "deactivate", "role": "owner"})
        refused[route.name] = response.status_code
    assert set(refused.values()) == {403}, refused
    assert snapshot(setup_a["tenant"]) == before


def test_only_the_owner_sees_the_notify_urls(client, setup_a, staff_factory):
    client.force_login(StaffMembership.objects.get(tenant=setup_a["tenant"], role="owner").user)
    client.post("/console/shop-a/settings/pay/", {"mchid": "1900000109"})
    token = PayAccount.objects.get(tenant=setup_a["tenant"]).notify_token
    assert f"/pay/wechat/v3/{token}/" in client.get("/console/shop-a/settings/pay/").content.decode()
    for role in ("manager", "operator", "analyst"):
        client.force_login(staff_factory(setup_a["tenant"], f"{role}-n", role).user)
        html = client.get("/console/shop-a/settings/pay/").content.decode()
        assert "1900000109" in html and token not in html
