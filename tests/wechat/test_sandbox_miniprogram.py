from __future__ import annotations

import json

import pytest

from tests.wechat.conftest import APPID, SECRET
from wechat.sandbox import state
from wechat.sandbox.mp_views import openid_for

BASE = "/sandbox/wechat"


def _login(client, code, appid=APPID, secret=SECRET):
    response = client.get(
        f"{BASE}/sns/jscode2session",
        {"appid": appid, "secret": secret, "js_code": code, "grant_type": "authorization_code"},
    )
    assert response.status_code == 200
    return json.loads(response.content)


def test_login_is_deterministic_per_user_and_codes_are_single_use(client, mp_creds):
    first = _login(client, "alice:1")
    assert set(first) == {"openid", "session_key"}
    assert first["openid"] == openid_for(APPID, "alice")
    assert len(first["openid"]) == 28
    again = _login(client, "alice:2")
    assert again["openid"] == first["openid"]
    assert again["session_key"] != first["session_key"]
    assert _login(client, "bob:1")["openid"] != first["openid"]
    assert _login(client, "alice:1")["errcode"] == 40163


def test_openids_differ_between_apps_but_unionid_does_not(client, mp_creds):
    assert openid_for(APPID, "alice") != openid_for("wx5a1db0x000000002", "alice")
    with_union = _login(client, "alice+union:1")
    assert with_union["openid"] == openid_for(APPID, "alice")
    assert with_union["unionid"].startswith("oU")


@pytest.mark.parametrize(
    ("code", "errcode"),
    [("err40029", 40029), ("err45011:x", 45011), ("err40226-1", 40226), ("err-1", -1)],
)
def test_magic_codes(client, mp_creds, code, errcode):
    answer = _login(client, code)
    assert answer["errcode"] == errcode
    assert "rid:" in answer["errmsg"]


def test_unknown_app_and_wrong_secret(client, mp_creds):
    assert _login(client, "a:1", appid="wx_unknown")["errcode"] == 40013
    assert _login(client, "a:1", secret="wrong")["errcode"] == 40125


def test_classic_token_rotates_and_stable_token_does_not(client, mp_creds):
    params = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    first = json.loads(client.get(f"{BASE}/cgi-bin/token", params).content)
    second = json.loads(client.get(f"{BASE}/cgi-bin/token", params).content)
    assert first["expires_in"] == 7200
    assert first["access_token"] != second["access_token"]
    assert state.token_appid(first["access_token"]) == APPID  # survives the overlap

    def stable(force):
        response = client.post(
            f"{BASE}/cgi-bin/stable_token", {**params, "force_refresh": force}, content_type="application/json"
        )
        return json.loads(response.content)

    a, b = stable(False), stable(False)
    assert a["access_token"] == b["access_token"]
    assert len(a["access_token"]) >= 100
    c = stable(True)
    assert c["access_token"] != a["access_token"]
    assert state.token_appid(a["access_token"]) is None
    assert state.token_appid(c["access_token"]) == APPID


def _send(client, token, body):
    response = client.post(
        f"{BASE}/cgi-bin/message/subscribe/send?access_token={token}",
        json.dumps(body, ensure_ascii=False),
        content_type="application/json",
    )
    return json.loads(response.content)


@pytest.fixture
def token(mp_creds):
    return state.stable_token(APPID, force_refresh=False)[0]


MESSAGE = {
    "touser": "oAlice",
    "template_id": "TPL-1",
    "page": "pages/coupon?id=1",
    "data": {"thing1": {"value": "春季新品八折券"}, "amount2": {"value": "¥12.34"}, "time3": {"value": "2024年6月8日 10:00"}},
    "miniprogram_state": "trial",
    "lang": "zh_CN",
}


def test_subscribe_send_records_the_message(client, token):
    answer = _send(client, token, MESSAGE)
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    inbox = json.loads(client.get(f"{BASE}/_inbox", {"appid": APPID}).content)
    assert len(inbox["messages"]) == 1
    sent = inbox["messages"][0]
    assert sent["msgid"] == answer["msgid"]
    assert (sent["touser"], sent["template_id"], sent["page"], sent["miniprogram_state"]) == (
        "oAlice", "TPL-1", "pages/coupon?id=1", "trial",
    )
    assert sent["data"] == MESSAGE["data"]
    assert json.loads(client.get(f"{BASE}/_inbox", {"appid": APPID, "touser": "oBob"}).content)["messages"] == []


@pytest.mark.parametrize(
    ("change", "errcode", "named"),
    [
        ({"data": {"thing1": {"value": "这是一个超过二十个字符的非常非常非常长的标题"}}}, 47003, "data.thing1.value"),
        ({"data": '{"thing1": {"value": "x"}}'}, 47003, "data"),
        ({"data": {"thing1": "x"}}, 47003, "data.thing1.value"),
        ({"data": {"number4": {"value": "12a"}}}, 47003, "data.number4.value"),
        ({"data": {"phrase5": {"value": "已发货了啊呀"}}}, 47003, "data.phrase5.value"),
        ({"data": {"character_string6": {"value": "订单1"}}}, 47003, "data.character_string6.value"),
        ({"touser": "err43101-alice"}, 43101, ""),
        ({"touser": ""}, 40003, ""),
        ({"template_id": ""}, 40037, ""),
        ({"miniprogram_state": "beta"}, 47003, "miniprogram_state"),
    ],
)
def test_subscribe_send_errors(client, token, change, errcode, named):
    answer = _send(client, token, {**MESSAGE, **change})
    assert answer["errcode"] == errcode
    assert named in answer["errmsg"]
    assert state.inbox(APPID) == []


def test_subscribe_send_needs_a_valid_token(client, mp_creds):
    assert _send(client, "not-a-token", MESSAGE)["errcode"] == 40001
    response = client.post(f"{BASE}/cgi-bin/message/subscribe/send", "{}", content_type="application/json")
    assert json.loads(response.content)["errcode"] == 41001
