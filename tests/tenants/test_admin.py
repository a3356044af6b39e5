"""/ops/: superusers only, every request logged, changes through the actions, secrets write-only."""

from __future__ import annotations

import pytest
from django.contrib import admin

from tenants.context import tenant_context
from tenants.models import AuditEvent, MiniProgramApp, OpsAccessLog, PayAccount, Tenant
from tenants.ops_site import OpsAdminSite

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-123")


@pytest.fixture
def ops(client, root):
    client.force_login(root)
    return client


def _audit(tenant, action):
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action=action).order_by("id")
                    .values_list("actor__username", "target", "details"))


def _inline_management(prefix: str, total: int, initial: int) -> dict:
    return {f"{prefix}-TOTAL_FORMS": str(total), f"{prefix}-INITIAL_FORMS": str(initial),
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1"}


def _change_body(tenant, *, name=None, mini=None, pay=None):
    mini_program = MiniProgramApp.objects.filter(tenant=tenant).first()
    pay_account = PayAccount.objects.filter(tenant=tenant).first()
    body = {"name": name or tenant.name, "_save": "Save"}
    body.update(_inline_management("mini_program", 1 if (mini_program or mini) else 0, 1 if mini_program else 0))
    body.update(_inline_management("pay_account", 1 if (pay_account or pay) else 0, 1 if pay_account else 0))
    if mini_program or mini:
        body.update({"mini_program-0-tenant": str(tenant.pk), "mini_program-0-appid": mini_program.appid
                     if mini_program else ""})
        if mini_program:
            body["mini_program-0-id"] = str(mini_program.pk)
        body.update({f"mini_program-0-{k}": v for k, v in (mini or {}).items()})
    if pay_account or pay:
        body["pay_account-0-tenant"] = str(tenant.pk)
        if pay_account:
            body.update({"pay_account-0-id": str(pay_account.pk), "pay_account-0-mchid": pay_account.mchid,
                         "pay_account-0-merchant_cert_serial": pay_account.merchant_cert_serial,
                         "pay_account-0-public_key_pem": pay_account.public_key_pem,
                         "pay_account-0-public_key_id": pay_account.public_key_id})
        body.update({f"pay_account-0-{k}": v for k, v in (pay or {}).items()})
    return body


def test_admin_site_is_the_ops_site():
    assert isinstance(admin.site._wrapped if hasattr(admin.site, "_wrapped") else admin.site, OpsAdminSite)


def test_only_superusers_get_in(client, tenant_a, owner_a, django_user_model):
    assert client.get("/ops/").status_code == 302
    staff = django_user_model.objects.create_user("staffer", password="staff-password-123", is_staff=True)
    for user in (owner_a, staff):
        client.force_login(user)
        for url in ("/ops/", "/ops/tenants/tenant/", f"/ops/tenants/tenant/{tenant_a.pk}/change/"):
            response = client.get(url)
            assert response.status_code == 302, (user, url)
            assert response["Location"].startswith("/ops/login/")
    assert OpsAccessLog.objects.count() == 0


def test_every_ops_request_is_logged(ops, root, tenant_a):
    ops.get("/ops/tenants/tenant/")
    ops.get(f"/ops/tenants/tenant/{tenant_a.pk}/change/")
    assert list(OpsAccessLog.objects.order_by("id").values_list("user__username", "method", "path")) == [
        ("root", "GET", "/ops/tenants/tenant/"), ("root", "GET", f"/ops/tenants/tenant/{tenant_a.pk}/change/")]


def test_lists_show_every_tenant(ops, tenant_a, tenant_b, owner_a, owner_b):
    html = ops.get("/ops/tenants/tenant/").content.decode()
    assert "shop-a" in html and "shop-b" in html
    audit = ops.get("/ops/tenants/auditevent/").content.decode()
    assert audit.count("<td class=\"field-action\">tenant.created</td>") == 2
    staff = ops.get("/ops/tenants/staffmembership/").content.decode()
    assert "owner-a" in staff and "owner-b" in staff


def test_suspend_and_reactivate_actions_go_through_the_action(ops, root, tenant_a, tenant_b):
    response = ops.post("/ops/tenants/tenant/", {"action": "suspend", "_selected_action": [str(tenant_a.pk)]})
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    tenant_b.refresh_from_db()
    assert (tenant_a.status, tenant_b.status) == ("suspended", "active")
    assert _audit(tenant_a, "tenant.suspended") == [("root", "shop-a", {})]
    assert _audit(tenant_b, "tenant.suspended") == []
    ops.post("/ops/tenants/tenant/", {"action": "reactivate", "_selected_action": [str(tenant_a.pk)]})
    tenant_a.refresh_from_db()
    assert tenant_a.status == "active"
    assert _audit(tenant_a, "tenant.active") == [("root", "shop-a", {})]


def test_records_are_read_only_and_tenants_cannot_be_deleted(ops, tenant_a):
    with tenant_context(tenant_a):
        event = AuditEvent.objects.first()
    assert ops.get("/ops/tenants/auditevent/add/").status_code == 403
    assert ops.post(f"/ops/tenants/auditevent/{event.pk}/change/", {"action": "forged"}).status_code == 403
    assert ops.post(f"/ops/tenants/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ops.post(f"/ops/tenants/tenant/{tenant_a.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ops.get("/ops/tenants/opsaccesslog/add/").status_code == 403
    assert Tenant.objects.filter(pk=tenant_a.pk).exists()
    with tenant_context(tenant_a):
        event.refresh_from_db()
    assert event.action == "tenant.created"


def test_adding_a_tenant_goes_through_create_tenant(ops, root):
    body = {"slug": "shop-c", "name": "Shop C", "_save": "Save",
            **_inline_management("mini_program", 0, 0), **_inline_management("pay_account", 0, 0)}
    response = ops.post("/ops/tenants/tenant/add/", body)
    assert response.status_code == 302, response.content.decode()[:3000]
    tenant = Tenant.objects.get(slug="shop-c")
    assert _audit(tenant, "tenant.created") == [("root", "shop-c", {"appid": "", "mchid": ""})]
    response = ops.post("/ops/tenants/tenant/add/", {**body, "slug": "login"})
    assert response.status_code == 200
    assert "标识 login 是保留字" in response.content.decode()


def test_rename_and_secrets_through_the_change_form(ops, root, tenant_a, pay_material):
    url = f"/ops/tenants/tenant/{tenant_a.pk}/change/"
    body = _change_body(tenant_a, name="Shop A (ops)",
                        mini={"new_app_secret": "ops-set-secret-123456"},
                        pay={"mchid": "1900000109", "new_apiv3_key": pay_material.apiv3_key,
                             "new_merchant_private_key": pay_material.private_key_pem})
    response = ops.post(url, body)
    assert response.status_code == 302, response.content.decode()[:5000]
    tenant_a.refresh_from_db()
    assert tenant_a.name == "Shop A (ops)"
    assert MiniProgramApp.objects.get(tenant=tenant_a).app_secret == "ops-set-secret-123456"
    account = PayAccount.objects.get(tenant=tenant_a)
    assert (account.apiv3_key, account.merchant_private_key) == (pay_material.apiv3_key,
                                                                 pay_material.private_key_pem.strip())
    assert [a for a, *_ in _audit(tenant_a, "credentials.pay_updated")] == ["root"]
    assert [a for a, *_ in _audit(tenant_a, "credentials.mini_program_updated")] == ["root"]

    # Submitted again with the secret fields blank (as the form always renders them): nothing is lost.
    response = ops.post(url, _change_body(tenant_a, pay={"merchant_cert_serial": "ABCDEF01"}))
    assert response.status_code == 302, response.content.decode()[:5000]
    account.refresh_from_db()
    assert account.merchant_cert_serial == "ABCDEF01"
    assert account.apiv3_key == pay_material.apiv3_key
    assert account.merchant_private_key == pay_material.private_key_pem.strip()
    assert MiniProgramApp.objects.get(tenant=tenant_a).app_secret == "ops-set-secret-123456"


def test_invalid_key_material_is_refused_on_the_change_form(ops, tenant_a, tenant_b):
    url = f"/ops/tenants/tenant/{tenant_a.pk}/change/"
    response = ops.post(url, _change_body(tenant_a, pay={"mchid": "1900000109", "new_apiv3_key": "short"}))
    assert response.status_code == 200
    assert "APIv3 密钥应为 32 个字符。" in response.content.decode()
    assert not PayAccount.objects.filter(tenant=tenant_a).exists()
    response = ops.post(url, _change_body(tenant_a, mini={"appid": "wxb0000000000000b1"}))
    assert response.status_code == 200
    assert MiniProgramApp.objects.get(tenant=tenant_a).appid == "wxa0000000000000a1"
