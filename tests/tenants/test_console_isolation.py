"""Every console route, from every app, refuses another tenant's slug exactly like an unknown one.

The routes come from walking the URL conf, so a page added by any app later is covered without
touching this file.
"""

from __future__ import annotations

import pytest

from tenants.models import StaffMembership
from tests.tenants.conftest import console_routes, snapshot

pytestmark = pytest.mark.django_db

# Plausible bodies for any form a console page might take; none of them may land in tenant B.
HOSTILE_POST = {
    "name": "hijacked", "appid": "wxb0000000000000b1", "app_secret": "stolen-secret", "mchid": "1900000999",
    "apiv3_key": "k" * 32, "username": "intruder", "role": "owner", "password": "correct-horse-battery",
    "op": "deactivate", "serial": "ABCDEF12", "tag": "x", "tags": "x", "member_ids": "1", "q": "x",
}


def test_the_walk_finds_the_console_pages():
    names = {route.name for route in console_routes()}
    assert {"console:dashboard", "console:settings", "console:settings_pay", "console:settings_staff",
            "console:settings_staff_update", "console:settings_audit", "console:section"} <= names
    assert "console:home" not in names and "console:login" not in names  # no tenant_slug


def test_a_member_of_a_gets_404_for_every_route_of_b_and_b_is_untouched(
        client, tenant_a, tenant_b, owner_a, owner_b, staff_factory, django_user_model):
    staff_factory(tenant_b, "operator-b", "operator")
    client.force_login(owner_a)
    client.raise_request_exception = True
    before = snapshot(tenant_b)
    counts = (django_user_model.objects.count(), StaffMembership.objects.count())
    routes = console_routes()
    wrong = []
    for route in routes:
        for method in ("get", "post"):
            send = getattr(client, method)
            kwargs = {"data": HOSTILE_POST} if method == "post" else {}
            other = send(route.url("shop-b"), **kwargs)
            unknown = send(route.url("no-such-shop"), **kwargs)
            if other.status_code != 404 or unknown.status_code != 404:
                wrong.append((method.upper(), route.url("shop-b"), other.status_code, unknown.status_code))
            elif other.content.replace(b"shop-b", b"") != unknown.content.replace(b"no-such-shop", b""):
                wrong.append((method.upper(), route.url("shop-b"), "404 body differs from an unknown slug's"))
    assert wrong == []
    assert snapshot(tenant_b) == before
    assert (django_user_model.objects.count(), StaffMembership.objects.count()) == counts
    assert len(routes) >= 9


def test_anonymous_gets_the_login_page_for_b_as_for_an_unknown_slug(client, tenant_b):
    for route in console_routes():
        for slug in ("shop-b", "no-such-shop"):
            response = client.get(route.url(slug))
            assert response.status_code == 302, route
            assert response["Location"].startswith("/console/login/?next="), route


def test_staff_ids_of_another_tenant_are_not_found(client, tenant_a, tenant_b, owner_a, staff_factory):
    target = staff_factory(tenant_b, "operator-b", "operator")
    before = snapshot(tenant_b)
    client.force_login(owner_a)
    url = f"/console/shop-a/settings/staff/{target.pk}/"
    assert client.post(url, {"op": "deactivate"}).status_code == 404
    assert client.post(url, {"op": "role", "role": "owner"}).status_code == 404
    assert snapshot(tenant_b) == before
