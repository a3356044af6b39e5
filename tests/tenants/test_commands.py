"""create_tenant, create_staff, set_wechat_pay (CONTRACT.md, "Commands"): happy paths and every error."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.context import tenant_context
from tenants.models import AuditEvent, MiniProgramApp, PayAccount, StaffMembership, Tenant
from tests.fixtures import PASSWORD

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- create_tenant ------------------------------------------------------------------------------

def test_create_tenant_prints_its_id():
    out, _ = run("create_tenant", "shop-c", "--name", "Shop C")
    tenant = Tenant.objects.get(slug="shop-c")
    assert out == f"{tenant.pk}\n"
    assert (tenant.name, tenant.status) == ("Shop C", "active")
    assert not MiniProgramApp.objects.filter(tenant=tenant).exists()
    assert not PayAccount.objects.filter(tenant=tenant).exists()


def test_create_tenant_with_mini_program_and_mchid():
    out, _ = run("create_tenant", "shop-c", "--name", "Shop C", "--appid", "wxc0000000000000c1",
                 "--app-secret", "c-secret-0001", "--mchid", "1900000109")
    tenant = Tenant.objects.get(pk=int(out))
    app = MiniProgramApp.objects.get(tenant=tenant)
    assert (app.appid, app.app_secret) == ("wxc0000000000000c1", "c-secret-0001")
    assert PayAccount.objects.get(tenant=tenant).mchid == "1900000109"
    with tenant_context(tenant):
        assert list(AuditEvent.objects.values_list("action", flat=True)) == ["tenant.created"]


@pytest.mark.parametrize(("args", "message"), [
    (["shop-a", "--name", "Again"], "标识 shop-a 已存在。"),
    (["shop-c", "--name", "C", "--appid", "wxa0000000000000a1"], "AppID wxa0000000000000a1 已被另一个商户使用。"),
    (["Shop C!", "--name", "C"], "标识只能包含小写字母、数字和连字符"),
    (["login", "--name", "C"], "标识 login 是保留字"),
    (["shop-c", "--name", "  "], "请填写商户名称。"),
    (["shop-c", "--name", "C", "--appid", "notwx"], "AppID 格式不正确"),
    (["shop-c", "--name", "C", "--mchid", "12ab"], "商户号应为 8–12 位数字。"),
    (["shop-c", "--name", "C", "--app-secret", "s"], "--app-secret needs --appid."),
    (["shop-c"], "the following arguments are required: --name"),
])
def test_create_tenant_errors(tenant_a, args, message):
    count = Tenant.objects.count()
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run("create_tenant", *args)
    assert Tenant.objects.count() == count
    assert not Tenant.objects.filter(slug="shop-c").exists()


# --- create_staff -------------------------------------------------------------------------------

def test_create_staff_with_a_password(tenant_a, tenant_b):
    out, err = run("create_staff", "shop-a", "dora", "--role", "manager", "--password", PASSWORD)
    assert out == "dora is now manager of shop-a.\n" and err == ""
    membership = StaffMembership.objects.get(user__username="dora")
    assert (membership.tenant_id, membership.role) == (tenant_a.pk, "manager")
    assert membership.user.check_password(PASSWORD)
    assert not StaffMembership.objects.filter(tenant=tenant_b, user__username="dora").exists()


def test_create_staff_generates_and_prints_a_password_for_a_new_user(tenant_a):
    out, _ = run("create_staff", "shop-a", "eve", "--role", "operator")
    lines = out.splitlines()
    assert lines[0] == "eve is now operator of shop-a."
    assert lines[1].startswith("Password: ")
    password = lines[1].removeprefix("Password: ")
    assert len(password) >= 12
    assert get_user_model().objects.get(username="eve").check_password(password)


def test_create_staff_gives_an_existing_user_another_tenant_and_keeps_the_password(tenant_a, tenant_b, owner_a):
    out, err = run("create_staff", "shop-b", "owner-a", "--role", "analyst", "--password", "ignored-password-1")
    assert out == "owner-a is now analyst of shop-b.\n"
    assert "password was ignored" in err
    owner_a.refresh_from_db()
    assert owner_a.check_password(PASSWORD)
    assert set(StaffMembership.objects.filter(user=owner_a).values_list("tenant__slug", "role")) == {
        ("shop-a", "owner"), ("shop-b", "analyst")}


@pytest.mark.parametrize(("args", "message"), [
    (["no-such-shop", "frank", "--role", "owner", "--password", PASSWORD], "No tenant with slug 'no-such-shop'."),
    (["shop-a", "frank", "--role", "boss", "--password", PASSWORD], "Unknown role 'boss'"),
    (["shop-a", "owner-a", "--role", "manager"], "owner-a 已是 shop-a 的员工。"),
    (["shop-a", "frank", "--role", "owner", "--password", "123"], "too short"),
    (["shop-a", "  ", "--role", "owner", "--password", PASSWORD], "请填写用户名。"),
    (["shop-a", "frank"], "the following arguments are required: --role"),
])
def test_create_staff_errors(tenant_a, owner_a, args, message):
    counts = (get_user_model().objects.count(), StaffMembership.objects.count())
    with pytest.raises(CommandError, match=message):
        run("create_staff", *args)
    assert (get_user_model().objects.count(), StaffMembership.objects.count()) == counts
    assert StaffMembership.objects.get(user=owner_a).role == "owner"


# --- set_wechat_pay -----------------------------------------------------------------------------

@pytest.fixture
def key_files(tmp_path, pay_material, other_pay_material):
    files = {
        "key": tmp_path / "apiclient_key.pem",
        "pub": tmp_path / "pub_key.pem",
        "cert": tmp_path / "wechatpay_1.pem",
        "cert2": tmp_path / "wechatpay_2.pem",
        "binary": tmp_path / "binary.p12",
    }
    files["key"].write_text(pay_material.private_key_pem)
    files["pub"].write_text(pay_material.public_key_pem)
    files["cert"].write_text(pay_material.cert_pem)
    files["cert2"].write_text(other_pay_material.cert_pem)
    files["binary"].write_bytes(b"\x30\x82\xff\xfe binary pkcs12")
    return {name: str(path) for name, path in files.items()}


def base_args(key_files, pay_material, slug="shop-a"):
    return ["set_wechat_pay", slug, "--mchid", "1900000109", "--apiv3-key", pay_material.apiv3_key,
            "--merchant-key-file", key_files["key"], "--merchant-cert-serial", "5157F09EFDC096DE15EBE81A47057A72"]


def test_set_wechat_pay_stores_everything_encrypted_and_prints_notify_urls(
        tenant_a, tenant_b, key_files, pay_material, other_pay_material):
    out, _ = run(*base_args(key_files, pay_material), "--public-key-file", key_files["pub"],
                 "--public-key-id", "PUB_KEY_ID_0114232134912410000000000000",
                 "--platform-cert-file", key_files["cert"], "--platform-cert-file", key_files["cert2"],
                 "--v2-key", pay_material.v2_key)
    account = PayAccount.objects.get(tenant=tenant_a)
    assert account.mchid == "1900000109"
    assert account.apiv3_key == pay_material.apiv3_key
    assert account.merchant_private_key == pay_material.private_key_pem.strip()
    assert account.merchant_cert_serial == "5157F09EFDC096DE15EBE81A47057A72"
    assert account.public_key_pem == pay_material.public_key_pem.strip()
    assert account.public_key_id == "PUB_KEY_ID_0114232134912410000000000000"
    assert set(account.platform_certs) == {pay_material.cert_serial, other_pay_material.cert_serial}
    assert account.v2_key == pay_material.v2_key
    assert not PayAccount.objects.filter(tenant=tenant_b).exists()
    assert f"v3 notify URL: http://127.0.0.1:8000/pay/wechat/v3/{account.notify_token}/\n" in out
    assert f"v2 notify URL: http://127.0.0.1:8000/pay/wechat/v2/{account.notify_token}/\n" in out
    assert f"Platform certificate {pay_material.cert_serial} stored." in out
    assert pay_material.apiv3_key not in out and pay_material.v2_key not in out
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT apiv3_key, merchant_private_key, v2_key FROM {PayAccount._meta.db_table} "
                       "WHERE tenant_id = %s", [tenant_a.pk])
        raw = " ".join(cursor.fetchone())
    assert pay_material.apiv3_key not in raw and pay_material.v2_key not in raw and "PRIVATE KEY" not in raw


def test_set_wechat_pay_again_keeps_the_token_and_adds_certificates(tenant_a, key_files, pay_material,
                                                                     other_pay_material):
    run(*base_args(key_files, pay_material), "--platform-cert-file", key_files["cert"])
    token = PayAccount.objects.get(tenant=tenant_a).notify_token
    out, _ = run(*base_args(key_files, pay_material), "--platform-cert-file", key_files["cert2"])
    account = PayAccount.objects.get(tenant=tenant_a)
    assert account.notify_token == token and token in out
    assert set(account.platform_certs) == {pay_material.cert_serial, other_pay_material.cert_serial}


@pytest.mark.parametrize(("change", "message"), [
    ({"slug": "no-such-shop"}, "No tenant with slug 'no-such-shop'."),
    ({"--merchant-key-file": "/nonexistent/apiclient_key.pem"}, "Cannot read merchant key file"),
    ({"--merchant-key-file": "binary"}, "is not PEM text"),
    ({"--merchant-key-file": "cert"}, "商户 API 私钥无法读取"),
    ({"--apiv3-key": "short"}, "APIv3 密钥应为 32 个字符。"),
    ({"--mchid": "abc"}, "商户号应为 8–12 位数字。"),
    ({"--merchant-cert-serial": "xyz!"}, "商户证书序列号应为十六进制字符串。"),
    ({"extra": ["--v2-key", "short"]}, "APIv2 密钥应为 32 个字符。"),
    ({"extra": ["--public-key-file", "pub"]}, "--public-key-file and --public-key-id go together."),
    ({"extra": ["--public-key-file", "pub", "--public-key-id", "KEY_1"]}, "应以 PUB_KEY_ID_ 开头"),
    ({"extra": ["--public-key-file", "cert", "--public-key-id", "PUB_KEY_ID_1"]}, "微信支付公钥无法读取"),
    ({"extra": ["--platform-cert-file", "key"]}, "is not a PEM certificate"),
    ({"extra": ["--platform-cert-file", "/nonexistent/cert.pem"]}, "Cannot read platform certificate file"),
])
def test_set_wechat_pay_errors(tenant_a, key_files, pay_material, change, message):
    args = base_args(key_files, pay_material, slug=change.get("slug", "shop-a"))
    for option, value in change.items():
        if option.startswith("--"):
            args[args.index(option) + 1] = key_files.get(value, value)
    args += [key_files.get(v, v) for v in change.get("extra", [])]
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not PayAccount.objects.filter(tenant=tenant_a).exists()
    with tenant_context(tenant_a):
        assert not AuditEvent.objects.filter(action="credentials.pay_updated").exists()
