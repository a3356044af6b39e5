from __future__ import annotations

import pytest
import requests
from django.core.cache import cache

from tests.wechat.conftest import APPID
from wechat import miniprogram
from wechat.errors import WeChatAPIError, WeChatUnavailable
from wechat.sandbox import state
from wechat.sandbox.mp_views import openid_for


def test_code_to_session_through_the_sandbox(mp_creds, transport):
    session = miniprogram.code_to_session(mp_creds, "alice:1")
    assert session["openid"] == openid_for(APPID, "alice")
    assert set(session) == {"openid", "session_key"}
    assert miniprogram.code_to_session(mp_creds, "alice+union:2")["unionid"].startswith("oU")
    # No access token was needed for login.
    assert [url.split("?")[0] for _, url, _ in transport.calls] == [
        "http://testserver/sandbox/wechat/sns/jscode2session"
    ] * 2


@pytest.mark.parametrize(("code", "errcode"), [("err40029", 40029), ("err45011", 45011), ("err-1", -1)])
def test_code_to_session_errors(mp_creds, transport, code, errcode):
    with pytest.raises(WeChatAPIError) as err:
        miniprogram.code_to_session(mp_creds, code)
    assert err.value.errcode == errcode


def test_reused_code_is_40163(mp_creds, transport):
    miniprogram.code_to_session(mp_creds, "carol:1")
    with pytest.raises(WeChatAPIError) as err:
        miniprogram.code_to_session(mp_creds, "carol:1")
    assert err.value.errcode == 40163


def test_network_failure_is_unavailable(mp_creds, settings):
    settings.WECHAT_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(WeChatUnavailable):
        miniprogram.code_to_session(mp_creds, "alice:1")


def test_timeout_is_unavailable(mp_creds, monkeypatch):
    def timeout(*args, **kwargs):
        raise requests.Timeout("slow")

    monkeypatch.setattr(requests, "request", timeout)
    with pytest.raises(WeChatUnavailable):
        miniprogram.code_to_session(mp_creds, "alice:1")


def test_access_token_is_cached_and_shared(mp_creds, transport):
    token = miniprogram.get_access_token(mp_creds)
    assert miniprogram.get_access_token(mp_creds) == token
    assert state.token_appid(token) == APPID
    assert cache.get(f"wechat:access_token:{APPID}") == token
    assert len(transport.calls) == 1
    assert transport.calls[0][1].endswith("/cgi-bin/stable_token")


def test_forced_refresh_of_a_rejected_token_forces_a_new_one(mp_creds, transport):
    token = miniprogram.get_access_token(mp_creds)
    renewed = miniprogram.get_access_token(mp_creds, force=True)
    # stable_token kept answering with the rejected token, so force_refresh was used.
    assert renewed != token
    assert state.token_appid(renewed) == APPID
    assert len(transport.calls) == 3


def test_client_points_every_api_group_at_the_configured_base(mp_creds, sandbox):
    client = miniprogram.client_for(mp_creds)
    assert client.API_BASE_URL == "http://testserver/sandbox/wechat/cgi-bin/"
    assert client.wxa.API_BASE_URL == "http://testserver/sandbox/wechat/"
    assert client.datacube.API_BASE_URL == "http://testserver/sandbox/wechat/datacube/"
    # Class attributes are untouched: other code using wechatpy is not redirected.
    assert type(client).API_BASE_URL == "https://api.weixin.qq.com/cgi-bin/"
    assert type(client.wxa).API_BASE_URL == "https://api.weixin.qq.com/"


def test_client_fetch_access_token_uses_stable_token(mp_creds, transport):
    client = miniprogram.client_for(mp_creds)
    assert client.access_token == miniprogram.get_access_token(mp_creds)
    assert all("/cgi-bin/token" not in url for _, url, _ in transport.calls)


def test_send_subscribe_message(mp_creds, transport, client):
    msgid = miniprogram.send_subscribe_message(
        mp_creds, "oAlice", "TPL-1", {"thing1": {"value": "新品上架"}, "amount2": "¥9.90"},
        page="pages/item?id=3", miniprogram_state="developer",
    )
    [sent] = state.inbox(APPID)
    assert sent["msgid"] == msgid
    assert sent["data"] == {"thing1": {"value": "新品上架"}, "amount2": {"value": "¥9.90"}}
    assert (sent["page"], sent["miniprogram_state"], sent["lang"]) == ("pages/item?id=3", "developer", "zh_CN")


def test_send_subscribe_message_errors_are_api_errors(mp_creds, transport):
    with pytest.raises(WeChatAPIError) as err:
        miniprogram.send_subscribe_message(mp_creds, "err43101x", "TPL-1", {"thing1": "x"})
    assert err.value.errcode == 43101
    with pytest.raises(WeChatAPIError) as err:
        miniprogram.send_subscribe_message(mp_creds, "oAlice", "TPL-1", {"thing1": "x" * 21})
    assert err.value.errcode == 47003
    assert "data.thing1.value" in err.value.errmsg


def test_a_revoked_token_is_renewed_once_and_the_send_retried(mp_creds, transport):
    token = miniprogram.get_access_token(mp_creds)
    state.revoke_token(token)  # e.g. someone force-refreshed elsewhere
    msgid = miniprogram.send_subscribe_message(mp_creds, "oAlice", "TPL-1", {"thing1": "x"})
    assert msgid is not None
    assert miniprogram.get_access_token(mp_creds) != token
    statuses = [url.split("?")[0].rsplit("/", 1)[-1] for _, url, _ in transport.calls]
    assert statuses == ["stable_token", "send", "stable_token", "send"]


def test_a_token_rejected_twice_gives_up(mp_creds, transport, monkeypatch):
    monkeypatch.setattr(state, "token_appid", lambda token: None)
    with pytest.raises(WeChatAPIError) as err:
        miniprogram.send_subscribe_message(mp_creds, "oAlice", "TPL-1", {"thing1": "x"})
    assert err.value.errcode == 40001
    assert sum(url.split("?")[0].endswith("/send") for _, url, _ in transport.calls) == 2


def test_only_one_worker_refreshes(mp_creds, transport):
    # Another worker holds the refresh lock and publishes its token meanwhile.
    key = f"wechat:access_token:{APPID}"
    cache.add(f"{key}:lock", "1", timeout=10)
    cache.set(key, "token-from-the-other-worker")
    assert miniprogram.get_access_token(mp_creds) == "token-from-the-other-worker"
    assert transport.calls == []
