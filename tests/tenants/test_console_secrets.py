"""Secrets set through the console never come back out: not on any console page, not in /ops/."""

from __future__ import annotations

import secrets

import pytest

from tenants.context import tenant_context
from tenants.models import AuditEvent, MiniProgramApp, PayAccount
from tests.tenants.conftest import assert_no_secret, console_routes

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


@pytest.fixture
def stored_secrets(client, tenant_a, tenant_b, owner_a, pay_material):
    """The owner sets every secret through the forms; returns the plaintexts."""
    values = {
        "app_secret": secrets.token_hex(16),
        "apiv3_key": pay_material.apiv3_key,
        "merchant_private_key": pay_material.private_key_pem,
        "v2_key": pay_material.v2_key,
    }
    client.force_login(owner_a)
    response = client.post("/console/shop-a/settings/mini-program/",
                           {"appid": "wxa0000000000000a1", "app_secret": values["app_secret"]})
    assert response.status_code == 302
    response = client.post("/console/shop-a/settings/pay/", {
        "mchid": "1900000109", "apiv3_key": values["apiv3_key"],
        "merchant_private_key": values["merchant_private_key"], "v2_key": values["v2_key"],
        "merchant_cert_serial": "5157F09EFDC096DE",
    })
    assert response.status_code == 302, _body(response)
    assert MiniProgramApp.objects.get(tenant=tenant_a).app_secret == values["app_secret"]
    account = PayAccount.objects.get(tenant=tenant_a)
    assert (account.apiv3_key, account.v2_key) == (values["apiv3_key"], values["v2_key"])
    return values


def test_no_console_page_shows_a_secret(client, stored_secrets, owner_a, staff_factory, tenant_a):
    client.raise_request_exception = False  # another app's page failing on sample ids still must not leak
    analyst = staff_factory(tenant_a, "analyst-a", "analyst").user
    pages = 0
    for user in (owner_a, analyst):
        client.force_login(user)
        for route in console_routes():
            response = client.get(route.url("shop-a"))
            assert_no_secret(_body(response), stored_secrets)
            pages += response.status_code == 200
    for url in ("/console/", "/console/shop-a/settings/pay/", "/console/shop-a/settings/mini-program/"):
        assert_no_secret(_body(client.get(url)), stored_secrets)
    assert pages >= 14  # the settings pages at least, for both users


def test_a_refused_submission_does_not_echo_the_secrets_it_carried(client, tenant_a, owner_a, pay_material):
    fresh = {"apiv3_key": secrets.token_hex(16), "v2_key": secrets.token_hex(16),
             "merchant_private_key": pay_material.private_key_pem, "app_secret": secrets.token_hex(16)}
    client.force_login(owner_a)
    response = client.post("/console/shop-a/settings/pay/", {
        "mchid": "12", "apiv3_key": fresh["apiv3_key"], "v2_key": fresh["v2_key"],
        "merchant_private_key": fresh["merchant_private_key"]})
    assert response.status_code == 200 and "商户号应为 8–12 位数字。" in _body(response)
    response_mp = client.post("/console/shop-a/settings/mini-program/",
                              {"appid": "bad", "app_secret": fresh["app_secret"]})
    assert response_mp.status_code == 200
    assert_no_secret(_body(response) + _body(response_mp), fresh)


def test_the_ops_admin_never_shows_a_secret(client, stored_secrets, tenant_a, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="root-password-123")
    client.force_login(root)
    with tenant_context(tenant_a):
        audit_ids = list(AuditEvent.objects.values_list("pk", flat=True))
    urls = ["/ops/", "/ops/tenants/tenant/", f"/ops/tenants/tenant/{tenant_a.pk}/change/",
            "/ops/tenants/auditevent/", "/ops/tenants/staffmembership/", "/ops/tenants/opsaccesslog/",
            *[f"/ops/tenants/auditevent/{pk}/change/" for pk in audit_ids]]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_secret(_body(response), stored_secrets)
    change_form = _body(client.get(f"/ops/tenants/tenant/{tenant_a.pk}/change/"))
    assert f"••••{stored_secrets['apiv3_key'][-4:]}" in change_form  # status shown, value not
