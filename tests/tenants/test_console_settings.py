"""Settings pages: tenant profile, Mini Program, WeChat Pay, staff, audit log (as the owner)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tenants import actions
from tenants.context import tenant_context
from tenants.models import AuditEvent, MiniProgramApp, PayAccount, StaffMembership
from tests.fixtures import PASSWORD
from tests.tenants.conftest import snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client, tenant_a, tenant_b, owner_a, owner_b):
    client.force_login(owner_a)
    return client


def _audit(tenant, action):
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action=action).order_by("created_at", "id")
                    .values_list("actor__username", "target"))


def _pem_file(name, text):
    return SimpleUploadedFile(name, text.encode(), content_type="application/x-pem-file")


# --- profile ------------------------------------------------------------------------------------

def test_profile_rename_is_saved_and_audited(owner_client, tenant_a, tenant_b):
    response = owner_client.post("/console/shop-a/settings/", {"name": "  Shop A Flagship  "})
    assert response.status_code == 302 and response["Location"] == "/console/shop-a/settings/"
    tenant_a.refresh_from_db()
    tenant_b.refresh_from_db()
    assert (tenant_a.name, tenant_b.name) == ("Shop A Flagship", "Shop B")
    assert _audit(tenant_a, "tenant.profile_updated") == [("owner-a", "shop-a")]
    assert _audit(tenant_b, "tenant.profile_updated") == []


def test_profile_blank_name_is_refused_in_words(owner_client, tenant_a):
    response = owner_client.post("/console/shop-a/settings/", {"name": "   "})
    assert response.status_code == 200
    assert 'class="error"' in response.content.decode()
    tenant_a.refresh_from_db()
    assert tenant_a.name == "Shop A"


# --- Mini Program --------------------------------------------------------------------------------

def test_mini_program_secret_is_write_only_and_blank_keeps_it(owner_client, tenant_a, tenant_b):
    owner_client.post("/console/shop-a/settings/mini-program/",
                      {"appid": "wxa0000000000000a1", "app_secret": "brand-new-secret-9876"})
    assert MiniProgramApp.objects.get(tenant=tenant_a).app_secret == "brand-new-secret-9876"
    response = owner_client.post("/console/shop-a/settings/mini-program/",
                                 {"appid": "wxa0000000000000a2", "app_secret": ""})
    assert response.status_code == 302
    app = MiniProgramApp.objects.get(tenant=tenant_a)
    assert (app.appid, app.app_secret) == ("wxa0000000000000a2", "brand-new-secret-9876")
    assert MiniProgramApp.objects.get(tenant=tenant_b).app_secret == "sandbox-secret-0001"
    html = owner_client.get("/console/shop-a/settings/mini-program/").content.decode()
    assert "••••9876" in html and "brand-new-secret" not in html
    assert _audit(tenant_a, "credentials.mini_program_updated") == [
        ("owner-a", "wxa0000000000000a1"), ("owner-a", "wxa0000000000000a2")]


@pytest.mark.parametrize(("appid", "message"), [
    ("wxb0000000000000b1", "AppID wxb0000000000000b1 已被另一个商户使用。"),
    ("not-an-appid", "AppID 格式不正确"),
])
def test_mini_program_errors_are_shown_on_the_form(owner_client, tenant_a, tenant_b, appid, message):
    before = snapshot(tenant_a), snapshot(tenant_b)
    response = owner_client.post("/console/shop-a/settings/mini-program/", {"appid": appid, "app_secret": "s"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert (snapshot(tenant_a), snapshot(tenant_b)) == before


# --- WeChat Pay ---------------------------------------------------------------------------------

def test_pay_account_from_files_and_text(owner_client, tenant_a, tenant_b, pay_material):
    response = owner_client.post("/console/shop-a/settings/pay/", {
        "mchid": "1900000109",
        "apiv3_key": pay_material.apiv3_key,
        "merchant_private_key_file": _pem_file("apiclient_key.pem", pay_material.private_key_pem),
        "merchant_cert_serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "public_key_pem": pay_material.public_key_pem,
        "public_key_id": "PUB_KEY_ID_0114232134912410000000000000",
        "platform_cert_files": [_pem_file("wechatpay.pem", pay_material.cert_pem)],
        "v2_key": pay_material.v2_key,
    })
    assert response.status_code == 302, response.content.decode()
    account = PayAccount.objects.get(tenant=tenant_a)
    assert account.mchid == "1900000109"
    assert account.apiv3_key == pay_material.apiv3_key
    assert account.merchant_private_key == pay_material.private_key_pem.strip()
    assert account.public_key_pem == pay_material.public_key_pem.strip()
    assert account.platform_certs == {pay_material.cert_serial: pay_material.cert_pem.strip()}
    assert account.v2_key == pay_material.v2_key
    assert not PayAccount.objects.filter(tenant=tenant_b).exists()

    html = owner_client.get("/console/shop-a/settings/pay/").content.decode()
    assert f"••••{pay_material.apiv3_key[-4:]}" in html
    assert pay_material.cert_serial in html
    assert "PUB_KEY_ID_0114232134912410000000000000" in html
    assert f"http://127.0.0.1:8000/pay/wechat/v3/{account.notify_token}/" in html
    assert f"http://127.0.0.1:8000/pay/wechat/v2/{account.notify_token}/" in html
    assert _audit(tenant_a, "credentials.pay_updated") == [("owner-a", "1900000109")]


def test_pay_blank_secrets_keep_the_stored_ones(owner_client, tenant_a, pay_material):
    actions.set_pay_account(tenant_a, mchid="1900000109", apiv3_key=pay_material.apiv3_key,
                            merchant_private_key=pay_material.private_key_pem, v2_key=pay_material.v2_key)
    response = owner_client.post("/console/shop-a/settings/pay/", {
        "mchid": "1900000110", "apiv3_key": "", "merchant_private_key": "", "v2_key": "",
        "merchant_cert_serial": "ABCDEF0123456789"})
    assert response.status_code == 302
    account = PayAccount.objects.get(tenant=tenant_a)
    assert (account.mchid, account.merchant_cert_serial) == ("1900000110", "ABCDEF0123456789")
    assert account.apiv3_key == pay_material.apiv3_key
    assert account.merchant_private_key == pay_material.private_key_pem.strip()
    assert account.v2_key == pay_material.v2_key


def test_uploading_another_platform_cert_adds_it_and_one_can_be_removed(
        owner_client, tenant_a, pay_material, other_pay_material):
    actions.set_pay_account(tenant_a, mchid="1900000109",
                            platform_certs={pay_material.cert_serial: pay_material.cert_pem})
    owner_client.post("/console/shop-a/settings/pay/", {
        "mchid": "1900000109", "platform_cert_files": [_pem_file("new.pem", other_pay_material.cert_pem)]})
    account = PayAccount.objects.get(tenant=tenant_a)
    assert set(account.platform_certs) == {pay_material.cert_serial, other_pay_material.cert_serial}

    response = owner_client.post("/console/shop-a/settings/pay/remove-cert/", {"serial": pay_material.cert_serial},
                                 follow=True)
    assert f"平台证书 {pay_material.cert_serial} 已删除。" in response.content.decode()
    account.refresh_from_db()
    assert set(account.platform_certs) == {other_pay_material.cert_serial}
    assert _audit(tenant_a, "credentials.platform_cert_removed") == [("owner-a", "1900000109")]

    response = owner_client.post("/console/shop-a/settings/pay/remove-cert/", {"serial": "DEADBEEF"}, follow=True)
    assert "没有序列号为 DEADBEEF 的平台证书。" in response.content.decode()
    account.refresh_from_db()
    assert set(account.platform_certs) == {other_pay_material.cert_serial}


@pytest.mark.parametrize(("body", "files", "message"), [
    ({"mchid": "12"}, {}, "商户号应为 8–12 位数字。"),
    ({"mchid": "1900000109", "apiv3_key": "too-short"}, {}, "APIv3 密钥应为 32 个字符。"),
    ({"mchid": "1900000109", "v2_key": "short"}, {}, "APIv2 密钥应为 32 个字符。"),
    ({"mchid": "1900000109", "merchant_private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"},
     {}, "商户 API 私钥无法读取"),
    ({"mchid": "1900000109"}, {"merchant_private_key_file": "cert"}, "商户 API 私钥无法读取"),
    ({"mchid": "1900000109"}, {"merchant_private_key_file": b"\xff\xfe\x00binary"}, "私钥 文件不是 PEM 文本。"),
    ({"mchid": "1900000109", "public_key_id": "PUB_KEY_ID_1"}, {}, "填写了公钥 ID，但没有微信支付公钥。"),
    ({"mchid": "1900000109", "public_key_id": "KEY_1"}, {"public_key_file": "public"},
     "微信支付公钥 ID 应以 PUB_KEY_ID_ 开头。"),
    ({"mchid": "1900000109"}, {"platform_cert_files": "private"}, "平台证书无法读取"),
    ({"mchid": "1900000109", "merchant_cert_serial": "not hex!"}, {}, "商户证书序列号应为十六进制字符串。"),
])
def test_pay_errors_are_shown_in_words_and_nothing_is_stored(owner_client, tenant_a, pay_material, body, files,
                                                             message):
    uploads = {}
    for field, what in files.items():
        content = what if isinstance(what, bytes) else {
            "cert": pay_material.cert_pem, "public": pay_material.public_key_pem,
            "private": pay_material.private_key_pem}[what]
        upload = SimpleUploadedFile("upload.pem", content if isinstance(content, bytes) else content.encode())
        uploads[field] = [upload] if field == "platform_cert_files" else upload
    response = owner_client.post("/console/shop-a/settings/pay/", {**body, **uploads})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PayAccount.objects.filter(tenant=tenant_a).exists()
    assert _audit(tenant_a, "credentials.pay_updated") == []


# --- staff --------------------------------------------------------------------------------------

def test_owner_adds_staff_who_can_then_log_in(owner_client, client, tenant_a, tenant_b):
    response = owner_client.post("/console/shop-a/settings/staff/",
                                 {"username": "carol", "role": "manager", "password": PASSWORD, "email": ""})
    assert response.status_code == 302
    membership = StaffMembership.objects.get(user__username="carol")
    assert (membership.tenant_id, membership.role, membership.is_active) == (tenant_a.pk, "manager", True)
    assert _audit(tenant_a, "staff.added")[-1] == ("owner-a", "carol")
    client.logout()
    assert client.login(username="carol", password=PASSWORD)
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize(("body", "message"), [
    ({"username": "owner-b", "role": "operator"}, None),  # an existing user joins; no password needed
    ({"username": "owner-a", "role": "operator"}, "owner-a 已是 shop-a 的员工。"),
    ({"username": "dave", "role": "operator"}, "新用户需要设置密码。"),
    ({"username": "dave", "role": "operator", "password": "12345678"}, "这个密码太常见了。"),
    ({"username": "dave", "role": "boss", "password": PASSWORD}, "选择一个有效的选项"),
])
def test_adding_staff_errors_in_words(owner_client, tenant_a, tenant_b, owner_b, body, message):
    password_b = owner_b.password
    response = owner_client.post("/console/shop-a/settings/staff/", body)
    if message is None:
        assert response.status_code == 302
        assert StaffMembership.objects.get(tenant=tenant_a, user=owner_b).role == "operator"
        owner_b.refresh_from_db()
        assert owner_b.password == password_b
        return
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not StaffMembership.objects.filter(tenant=tenant_a, user__username="dave").exists()


def test_owner_changes_a_role_and_deactivates_and_reactivates(owner_client, tenant_a, staff_factory):
    target = staff_factory(tenant_a, "erin", "operator")
    url = f"/console/shop-a/settings/staff/{target.pk}/"
    assert owner_client.post(url, {"op": "role", "role": "manager"}).status_code == 302
    target.refresh_from_db()
    assert target.role == "manager"
    owner_client.post(url, {"op": "deactivate"})
    target.refresh_from_db()
    assert not target.is_active
    html = owner_client.get("/console/shop-a/settings/staff/").content.decode()
    assert "已停用" in html
    owner_client.post(url, {"op": "activate"})
    target.refresh_from_db()
    assert target.is_active
    assert [a for a, _ in _audit(tenant_a, "staff.role_changed")] == ["owner-a"]
    assert _audit(tenant_a, "staff.deactivated") == [("owner-a", "erin")]
    assert _audit(tenant_a, "staff.activated") == [("owner-a", "erin")]


def test_the_last_owner_cannot_leave(owner_client, tenant_a, owner_a):
    mine = StaffMembership.objects.get(tenant=tenant_a, user=owner_a)
    url = f"/console/shop-a/settings/staff/{mine.pk}/"
    for body in ({"op": "deactivate"}, {"op": "role", "role": "analyst"}):
        response = owner_client.post(url, body, follow=True)
        assert "商户至少要保留一位有效的所有者。" in response.content.decode()
        mine.refresh_from_db()
        assert (mine.role, mine.is_active) == ("owner", True)


def test_staff_list_shows_only_this_tenants_staff(owner_client, tenant_a, tenant_b, staff_factory):
    staff_factory(tenant_b, "b-only-person", "operator")
    html = owner_client.get("/console/shop-a/settings/staff/").content.decode()
    assert "owner-a" in html
    assert "owner-b" not in html and "b-only-person" not in html


# --- audit log ----------------------------------------------------------------------------------

def test_audit_log_is_newest_first_paginated_and_own_tenant_only(owner_client, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        AuditEvent.objects.bulk_create([AuditEvent(action="test.event", target=f"a-{i:02d}") for i in range(60)])
    actions.audit(tenant_b, "test.event", target="b-secret-target")
    first = owner_client.get("/console/shop-a/settings/audit/").content.decode()
    assert "b-secret-target" not in first
    assert first.count("<tr>") - 1 == 50  # header row + 50
    second = owner_client.get("/console/shop-a/settings/audit/?page=2").content.decode()
    assert "b-secret-target" not in second
    # 60 bulk events + the two from the fixtures (tenant created, owner added) = 62 rows
    assert second.count("<tr>") - 1 == 12
    assert "第 2 / 2 页" in second
    # Newest first: the fixture's "tenant created" is the very last row.
    assert second.rstrip().rfind("创建商户") > second.rfind("a-00")
