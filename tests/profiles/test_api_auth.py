"""Sign-in through the WeChat sandbox, tokens (expiry, tampering, kinds), refresh, throttles."""

from __future__ import annotations

import logging
import threading
import types
from unittest import mock

import pytest
from django.core import signing
from django.db import connection

from profiles import tokens
from profiles.models import Member
from tenants import actions as tenant_actions
from tenants.context import tenant_context
from tenants.credentials import MiniProgramCredentials
from tests.fixtures import postgres_only
from tests.profiles.conftest import auth, make_member
from wechat.sandbox.mp_views import openid_for

pytestmark = pytest.mark.django_db

APP_A = "wxa0000000000000a1"
APP_B = "wxb0000000000000b1"


def login(api, code, appid=APP_A, **extra):
    headers = {"HTTP_X_WX_APPID": appid} if appid is not None else {}
    return api.call("POST", "auth/wx-login", {"code": code}, **headers, **extra)


def members(tenant):
    with tenant_context(tenant):
        return list(Member.objects.order_by("pk").values_list("openid", flat=True))


def test_login_creates_the_member_once_and_answers_tokens(api, tenant_a, tenant_b, wechat_sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    status, body, _ = login(api, "alice:1")
    assert status == 200, body
    assert set(body) == {"token", "refresh_token", "expires_in", "member"}
    assert body["expires_in"] == 7200
    assert body["member"]["openid"] == openid_for(APP_A, "alice")
    assert body["member"]["points"] == 0
    assert "session_key" not in str(body)
    first_id = body["member"]["id"]

    status, again, _ = login(api, "alice:2")  # same WeChat user, new code
    assert status == 200
    assert again["member"]["id"] == first_id
    assert members(tenant_a) == [openid_for(APP_A, "alice")]
    assert members(tenant_b) == []
    assert "session_key" not in caplog.text

    status, me, _ = api.call("GET", "me", HTTP_AUTHORIZATION=f"Bearer {again['token']}")
    assert status == 200
    assert me["id"] == first_id


def test_same_user_in_two_merchants_gets_two_members(api, tenant_a, tenant_b, wechat_sandbox):
    _, in_a, _ = login(api, "alice:1", APP_A)
    _, in_b, _ = login(api, "alice:2", APP_B)
    assert in_a["member"]["id"] != in_b["member"]["id"]
    assert members(tenant_a) == [openid_for(APP_A, "alice")]
    assert members(tenant_b) == [openid_for(APP_B, "alice")]


def test_unionid_is_kept(api, tenant_a, wechat_sandbox):
    _, body, _ = login(api, "carol+union:1")
    with tenant_context(tenant_a):
        assert Member.objects.get(pk=body["member"]["id"]).unionid.startswith("oU")


@pytest.mark.parametrize(
    ("code", "status", "error_code", "errcode"),
    [
        ("err40029-x", 400, "invalid_code", 40029),
        ("err45011-x", 429, "wechat_rate_limited", 45011),
        ("err40226-x", 403, "wechat_user_blocked", 40226),
        ("err-1-x", 503, "wechat_unavailable", -1),
    ],
)
def test_wechat_errors_are_mapped(api, tenant_a, wechat_sandbox, code, status, error_code, errcode):
    got_status, body, _ = login(api, code)
    assert got_status == status
    assert body == {"error": {"code": error_code, "message": mock.ANY, "details": {"errcode": errcode}}}
    assert members(tenant_a) == []


def test_a_reused_code_is_invalid(api, tenant_a, wechat_sandbox):
    assert login(api, "dave:1")[0] == 200
    status, body, _ = login(api, "dave:1")
    assert status == 400
    assert body["error"]["code"] == "invalid_code"
    assert body["error"]["details"] == {"errcode": 40163}


@pytest.mark.parametrize(("wechat_knows", "errcode"), [("another secret", 40125), (None, 40013)])
def test_wrong_app_settings_are_the_merchants_problem_not_the_users(api, tenant_a, wechat_sandbox,
                                                                    wechat_knows, errcode):
    # The sandbox normally reads the secret the merchant entered; here WeChat knows another one
    # (or no such app), as when the merchant mistyped it in the console.
    wechat_side = types.SimpleNamespace(mini_program_credentials=lambda appid: (
        MiniProgramCredentials(tenant_id=tenant_a.pk, appid=appid, secret=wechat_knows) if wechat_knows else None))
    with mock.patch("wechat.sandbox.mp_views.resolvers", wechat_side):
        status, body, _ = login(api, "erin:1")
    assert status == 503
    assert body["error"]["code"] == "wechat_misconfigured"
    assert body["error"]["details"] == {"errcode": errcode}
    assert members(tenant_a) == []


def test_wechat_unreachable_is_503(api, tenant_a, settings):
    import requests

    with mock.patch("requests.adapters.HTTPAdapter.send", side_effect=requests.ConnectionError("down")):
        status, body, response = login(api, "frank:1")
    assert status == 503
    assert body["error"]["code"] == "wechat_unavailable"
    assert response["Retry-After"] == "30"


def test_unknown_app_suspended_tenant_and_bad_requests(api, tenant_a, wechat_sandbox):
    status, body, _ = login(api, "alice:1", appid="wx00000000000000zz")
    assert (status, body["error"]["code"]) == (404, "unknown_app")
    status, body, _ = login(api, "alice:1", appid=None)
    assert (status, body["error"]["code"]) == (400, "missing_app_id")
    status, body, _ = api.call("POST", "auth/wx-login", {}, HTTP_X_WX_APPID=APP_A)
    assert (status, body["error"]["code"]) == (400, "invalid")
    tenant_actions.set_tenant_status(tenant_a, "suspended")
    status, body, _ = login(api, "alice:1")
    assert (status, body["error"]["code"]) == (403, "tenant_suspended")
    assert members(tenant_a) == []


# --- tokens ------------------------------------------------------------------------------------------


def test_no_token_and_garbage_tokens_are_401(api, member_a):
    status, body, response = api.call("GET", "me")
    assert (status, body["error"]["code"]) == (401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer", "Bearer a b", "Bearer not-a-token", "Basic Zm9vOmJhcg=="):
        status, body, _ = api.call("GET", "me", HTTP_AUTHORIZATION=header)
        assert status == 401, header


def test_tampered_token_is_401(api, member_a, member_b):
    good = tokens.issue(member_a.tenant_id, member_a.pk, tokens.ACCESS)
    payload, timestamp, signature = good.split(":")
    forged_payload = signing.b64_encode(
        f'{{"t":{member_b.tenant_id},"m":{member_b.pk},"k":"access"}}'.encode()).decode()
    forged = ":".join([forged_payload, timestamp, signature])
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    other_key = signing.dumps({"t": member_a.tenant_id, "m": member_a.pk, "k": "access"},
                              key="another-secret-key-entirely-0123456789-0123456789",
                              salt="jingzhun.member-token.access")
    for token in (forged, flipped, other_key):
        status, body, _ = api.call("GET", "me", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert (status, body["error"]["code"]) == (401, "invalid_token")
    assert api.call("GET", "me", HTTP_AUTHORIZATION=f"Bearer {good}")[0] == 200


def test_expired_token_is_401_token_expired(api, member_a, settings):
    past = types.SimpleNamespace(time=lambda: 1_000_000_000)
    with mock.patch.object(signing, "time", past):
        old = tokens.issue(member_a.tenant_id, member_a.pk, tokens.ACCESS)
    status, body, _ = api.call("GET", "me", HTTP_AUTHORIZATION=f"Bearer {old}")
    assert (status, body["error"]["code"]) == (401, "token_expired")


def test_a_token_naming_another_tenants_member_reads_nothing(api, member_a, member_b):
    # Even a validly signed token cannot pair tenant A with tenant B's member id.
    crossed = tokens.issue(member_a.tenant_id, member_b.pk, tokens.ACCESS)
    status, body, _ = api.call("GET", "me", HTTP_AUTHORIZATION=f"Bearer {crossed}")
    assert (status, body["error"]["code"]) == (401, "invalid_token")


def test_each_tenants_token_reads_its_own_lookalike_member(api, member_a, member_b):
    _, me_a, _ = api.call("GET", "me", **auth(member_a))
    _, me_b, _ = api.call("GET", "me", **auth(member_b))
    assert me_a["openid"] == me_b["openid"]
    assert (me_a["id"], me_b["id"]) == (member_a.pk, member_b.pk)


def test_refresh_token_is_not_an_access_token_and_the_reverse(api, member_a):
    status, body, _ = api.call("GET", "me", **auth(member_a, tokens.REFRESH))
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    access = tokens.issue(member_a.tenant_id, member_a.pk, tokens.ACCESS)
    status, body, _ = api.call("POST", "auth/refresh", {"refresh_token": access})
    assert (status, body["error"]["code"]) == (401, "invalid_token")


def test_refresh_gives_a_working_pair(api, member_a):
    refresh = tokens.issue(member_a.tenant_id, member_a.pk, tokens.REFRESH)
    status, body, _ = api.call("POST", "auth/refresh", {"refresh_token": refresh})
    assert status == 200
    assert set(body) == {"token", "refresh_token", "expires_in"}
    assert api.call("GET", "me", HTTP_AUTHORIZATION=f"Bearer {body['token']}")[1]["id"] == member_a.pk


def test_suspended_tenant_refuses_tokens(api, member_a, tenant_a):
    tenant_actions.set_tenant_status(tenant_a, "suspended")
    status, body, _ = api.call("GET", "me", **auth(member_a))
    assert (status, body["error"]["code"]) == (403, "tenant_suspended")
    refresh = tokens.issue(member_a.tenant_id, member_a.pk, tokens.REFRESH)
    assert api.call("POST", "auth/refresh", {"refresh_token": refresh})[0] == 403


# --- throttles ------------------------------------------------------------------------------------


def test_logins_are_throttled_per_ip(api, tenant_a, wechat_sandbox, settings):
    settings.WX_LOGIN_RATE_PER_IP = "2/min"
    assert login(api, "t1:1")[0] == 200
    assert login(api, "t2:1")[0] == 200
    status, body, response = login(api, "t3:1")
    assert status == 429
    assert body["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    # Another address is not held back; a forged X-Forwarded-For does not make a new address.
    assert login(api, "t4:1", REMOTE_ADDR="10.0.0.9")[0] == 200
    assert login(api, "t5:1", HTTP_X_FORWARDED_FOR="10.9.9.9")[0] == 429
    assert len(members(tenant_a)) == 3


def test_logins_are_throttled_per_app(api, tenant_a, tenant_b, wechat_sandbox, settings):
    settings.WX_LOGIN_RATE_PER_APP = "2/min"
    assert login(api, "u1:1", REMOTE_ADDR="10.0.0.1")[0] == 200
    assert login(api, "u2:1", REMOTE_ADDR="10.0.0.2")[0] == 200
    assert login(api, "u3:1", REMOTE_ADDR="10.0.0.3")[0] == 429
    assert login(api, "u3:2", APP_B, REMOTE_ADDR="10.0.0.3")[0] == 200


# --- concurrency (PostgreSQL) -------------------------------------------------------------------------


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_logins_make_one_member(tenant_a, tenant_b):
    from django.test import Client

    from wechat.testing import sandbox_transport

    make_member(tenant_b, openid_for(APP_A, "zoe"))  # the same openid elsewhere does not interfere
    results: list[tuple[int, int | None]] = []
    barrier = threading.Barrier(8)

    def attempt(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            response = Client().post("/api/v1/auth/wx-login", {"code": f"zoe:{n}"},
                                     content_type="application/json", HTTP_X_WX_APPID=APP_A)
            body = response.json()
            results.append((response.status_code, body.get("member", {}).get("id")))
        finally:
            connection.close()

    with sandbox_transport():
        threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert [status for status, _ in results] == [200] * 8
    assert len({member_id for _, member_id in results}) == 1
    assert members(tenant_a) == [openid_for(APP_A, "zoe")]


def test_request_user_answers_identity_questions_without_a_tenant_context(member_a, rf):
    from profiles.authentication import MemberTokenAuthentication
    from tenants.context import TenantContextError

    request = rf.get("/api/v1/me", **auth(member_a))
    user, credentials = MemberTokenAuthentication().authenticate(request)
    assert (user.is_authenticated, user.pk, credentials.tenant.pk) == (True, member_a.pk, member_a.tenant_id)
    with pytest.raises(TenantContextError):
        user.nickname  # noqa: B018 - member data needs the tenant context
    with tenant_context(member_a.tenant):
        assert user.nickname == "Alice"


def test_an_app_without_a_secret_never_calls_wechat(api, wechat_sandbox):
    from tests.fixtures import make_tenant

    make_tenant("shop-c", "Shop C", appid="wxc0000000000000c1", secret="")
    status, body, _ = login(api, "alice:1", appid="wxc0000000000000c1")
    assert (status, body["error"]["code"]) == (503, "wechat_misconfigured")
    assert wechat_sandbox.calls == []
