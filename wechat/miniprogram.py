"""Mini-program server APIs: login (code2session), access tokens, subscribe messages.

Built on wechatpy 1.8.18 with its three base-URL traps handled (WECHAT.md §4.1): the client's and
every API group's ``API_BASE_URL`` are rewritten to ``settings.WECHAT_API_BASE``, and
``fetch_access_token`` (hard-coded to WeChat's host and to the rotating ``/cgi-bin/token``) is
replaced by a ``stable_token`` refresher shared by every worker through the Django cache.
wechatpy's own auto-retry on token errors recurses without bound, so it is off and we retry once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from wechatpy import WeChatClient
from wechatpy.client.api.base import BaseWeChatAPI
from wechatpy.exceptions import WeChatClientException

from tenants.credentials import MiniProgramCredentials

from .errors import WeChatAPIError, WeChatUnavailable

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
TIMEOUT_S = 5.0
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# A refresh that outlives this lock lets a second worker in; stable_token makes that harmless.
TOKEN_LOCK_S = 10
TOKEN_WAIT_S = 3.0
TOKEN_EARLY_EXPIRY_S = 300


def api_base() -> str:
    return getattr(settings, "WECHAT_API_BASE", DEFAULT_API_BASE).rstrip("/")


def _token_cache_key(appid: str) -> str:
    return f"wechat:access_token:{appid}"


# --- plain HTTP for calls that need no token (and for the token itself) --------------------------


def _json_call(method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None) -> dict:
    try:
        response = requests.request(method, api_base() + path, params=params, json=json, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise WeChatUnavailable(f"WeChat unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 400:
        raise WeChatUnavailable(f"WeChat answered HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError as exc:
        raise WeChatUnavailable("WeChat answered with something other than JSON") from exc
    if not isinstance(data, dict):
        raise WeChatUnavailable("WeChat answered with something other than an object")
    try:
        errcode = int(data.get("errcode") or 0)
    except (TypeError, ValueError) as exc:
        raise WeChatUnavailable("WeChat answered with an unreadable errcode") from exc
    if errcode != 0:
        raise WeChatAPIError(errcode, str(data.get("errmsg", "")))
    return data


def code_to_session(creds: MiniProgramCredentials, js_code: str) -> dict[str, str]:
    """Exchange a ``wx.login()`` code for ``openid``, ``session_key`` and maybe ``unionid``.

    Codes are single-use: never retry with the same code (40163).
    """
    data = _json_call(
        "GET",
        "/sns/jscode2session",
        params={
            "appid": creds.appid,
            "secret": creds.secret,
            "js_code": js_code,
            "grant_type": "authorization_code",
        },
    )
    if not data.get("openid") or not data.get("session_key"):
        raise WeChatUnavailable("code2session answered without openid/session_key")
    result = {"openid": str(data["openid"]), "session_key": str(data["session_key"])}
    if data.get("unionid"):
        result["unionid"] = str(data["unionid"])
    return result


# --- access token ----------------------------------------------------------------------------------


def _fetch_stable_token(creds: MiniProgramCredentials, force_refresh: bool) -> tuple[str, int]:
    data = _json_call(
        "POST",
        "/cgi-bin/stable_token",
        json={
            "grant_type": "client_credential",
            "appid": creds.appid,
            "secret": creds.secret,
            "force_refresh": force_refresh,
        },
    )
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise WeChatUnavailable("stable_token answered without access_token")
    return token, int(data.get("expires_in") or 7200)


def _wait_for_refresher(key: str, rejected: str | None) -> str | None:
    deadline = time.monotonic() + TOKEN_WAIT_S
    while time.monotonic() < deadline:
        token = cache.get(key)
        if token and token != rejected:
            return token
        time.sleep(0.05)
    return None


def _renew_token(creds: MiniProgramCredentials, rejected: str | None) -> str:
    key = _token_cache_key(creds.appid)
    lock = f"{key}:lock"
    holding = cache.add(lock, "1", timeout=TOKEN_LOCK_S)
    if not holding:
        token = _wait_for_refresher(key, rejected)
        if token:
            return token
    try:
        current = cache.get(key)
        if current and current != rejected:
            return current
        token, expires_in = _fetch_stable_token(creds, force_refresh=False)
        if rejected is not None and token == rejected:
            # WeChat still hands out the token it just refused: only a forced refresh helps.
            token, expires_in = _fetch_stable_token(creds, force_refresh=True)
        cache.set(key, token, timeout=max(60, expires_in - TOKEN_EARLY_EXPIRY_S))
        logger.info("WeChat access token renewed for appid %s", creds.appid)
        return token
    finally:
        if holding:
            cache.delete(lock)


def get_access_token(creds: MiniProgramCredentials, force: bool = False) -> str:
    """The app's token from the shared cache; ``force`` treats the cached one as rejected."""
    cached = cache.get(_token_cache_key(creds.appid))
    if cached and not force:
        return cached
    return _renew_token(creds, rejected=cached if force else None)


# --- wechatpy client ---------------------------------------------------------------------------------


class MiniProgramClient(WeChatClient):
    """wechatpy client pointed at ``WECHAT_API_BASE``, with tokens from our shared refresher."""

    def __init__(self, creds: MiniProgramCredentials, base_url: str | None = None, timeout: float = TIMEOUT_S):
        super().__init__(creds.appid, creds.secret, timeout=timeout, auto_retry=False)
        self._creds = creds
        base = (base_url or api_base()).rstrip("/")
        self.API_BASE_URL = f"{base}/cgi-bin/"
        # wechatpy binds one instance per API group in __new__; some carry their own absolute base.
        for group in list(vars(self).values()):
            if isinstance(group, BaseWeChatAPI) and getattr(group, "API_BASE_URL", ""):
                group.API_BASE_URL = group.API_BASE_URL.replace(DEFAULT_API_BASE, base, 1)

    @property
    def access_token(self) -> str:  # type: ignore[override]
        return get_access_token(self._creds)

    def fetch_access_token(self) -> dict[str, Any]:
        return {"access_token": get_access_token(self._creds, force=True)}


def client_for(creds: MiniProgramCredentials) -> MiniProgramClient:
    return MiniProgramClient(creds)


class _TokenRejected(Exception):
    pass


def _post_once(client: MiniProgramClient, endpoint: str, token: str, data: dict[str, Any]) -> dict[str, Any]:
    try:
        result = client.post(endpoint, params={"access_token": token}, data=data)
    except WeChatClientException as exc:
        if exc.errcode is None:
            raise WeChatUnavailable("WeChat answered an HTTP error") from exc
        errcode = int(exc.errcode)
        if errcode in TOKEN_ERRCODES:
            raise _TokenRejected from exc
        raise WeChatAPIError(errcode, str(exc.errmsg)) from exc
    except requests.RequestException as exc:
        raise WeChatUnavailable(f"WeChat unreachable: {type(exc).__name__}") from exc
    if not isinstance(result, dict):
        raise WeChatUnavailable("WeChat answered with something other than JSON")
    return result


def post_with_token(creds: MiniProgramCredentials, endpoint: str, data: dict[str, Any]) -> dict[str, Any]:
    """POST ``{WECHAT_API_BASE}/cgi-bin/<endpoint>``; a rejected token is renewed and retried once."""
    client = client_for(creds)
    token = get_access_token(creds)
    try:
        return _post_once(client, endpoint, token, data)
    except _TokenRejected:
        token = _renew_token(creds, rejected=token)
    try:
        return _post_once(client, endpoint, token, data)
    except _TokenRejected as exc:
        cause = exc.__cause__
        errcode = int(getattr(cause, "errcode", 40001))
        raise WeChatAPIError(errcode, str(getattr(cause, "errmsg", "access token rejected"))) from exc


def send_subscribe_message(
    creds: MiniProgramCredentials,
    openid: str,
    template_id: str,
    data: dict[str, Any],
    page: str | None = None,
    miniprogram_state: str = "formal",
    lang: str = "zh_CN",
) -> int | None:
    """Send one subscribe message; 43101 (no remaining grant) is a normal WeChatAPIError to record."""
    payload: dict[str, Any] = {
        "touser": openid,
        "template_id": template_id,
        "data": {k: v if isinstance(v, dict) else {"value": v} for k, v in data.items()},
        "miniprogram_state": miniprogram_state,
        "lang": lang,
    }
    if page:
        payload["page"] = page
    result = post_with_token(creds, "message/subscribe/send", payload)
    msgid = result.get("msgid")
    return int(msgid) if msgid is not None else None
