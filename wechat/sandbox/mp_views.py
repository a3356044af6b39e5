"""Sandbox mini-program APIs: ``sns/jscode2session``, tokens, subscribe messages, and an inbox.

Magic login codes (the part before an optional ``:`` names the user, so ``alice:1`` and ``alice:2``
are the same person): ``err40029…`` invalid code, ``err45011…`` rate limited, ``err40226…``
high-risk user, ``err-1…`` system busy; ``+union`` anywhere adds a ``unionid``. Openids starting
``err43101`` refuse subscribe messages, ``err40003`` are invalid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tenants import resolvers

from . import state

MAGIC_CODE_ERRORS = {
    "err40029": (40029, "invalid code"),
    "err45011": (45011, "api minute-quota reach limit  mustslower  retry next minute"),
    "err40226": (40226, "invalid user, high risk user"),
    "err-1": (-1, "system error"),
}
MAGIC_OPENID_ERRORS = {
    "err43101": (43101, "user refuse to accept the msg"),
    "err40003": (40003, "invalid openid"),
}
MINIPROGRAM_STATES = ("formal", "trial", "developer")


def _rid() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def _error(errcode: int, errmsg: str, content_type: str = "application/json") -> JsonResponse:
    # WeChat answers errors with HTTP 200 and an errcode.
    response = JsonResponse({"errcode": errcode, "errmsg": f"{errmsg} rid: {_rid()}"})
    response["Content-Type"] = content_type
    return response


def _ok(payload: dict[str, Any], content_type: str = "application/json") -> JsonResponse:
    response = JsonResponse(payload, json_dumps_params={"ensure_ascii": False})
    response["Content-Type"] = content_type
    return response


def _b64_id(value: str, length: int) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).decode()[:length]


def openid_for(appid: str, user: str) -> str:
    """Deterministic per (app, user), 28 characters like WeChat's."""
    return "o" + _b64_id(f"{appid}\n{user}", 27)


def unionid_for(user: str) -> str:
    return "oU" + _b64_id(f"union\n{user}", 26)


def _app_error(appid: str, secret: str) -> JsonResponse | None:
    if not appid:
        return _error(41002, "appid missing")
    creds = resolvers.mini_program_credentials(appid)
    if creds is None:
        return _error(40013, "invalid appid")
    if not secrets.compare_digest(secret.encode(), creds.secret.encode()):
        return _error(40125, "invalid appsecret")
    return None


@csrf_exempt
@require_GET
def jscode2session(request: HttpRequest) -> HttpResponse:
    appid = request.GET.get("appid", "")
    code = request.GET.get("js_code", "")
    plain = "text/plain"  # what WeChat really sends for this endpoint
    error = _app_error(appid, request.GET.get("secret", ""))
    if error is not None:
        error["Content-Type"] = plain
        return error
    if request.GET.get("grant_type") != "authorization_code":
        return _error(40002, "invalid grant_type", plain)
    if not code:
        return _error(41008, "missing code", plain)
    for prefix, (errcode, errmsg) in MAGIC_CODE_ERRORS.items():
        if code.startswith(prefix):
            return _error(errcode, errmsg, plain)
    if not state.claim_code(appid, code):
        return _error(40163, "code been used", plain)
    user = code.split(":", 1)[0].replace("+union", "")
    payload = {"session_key": base64.b64encode(secrets.token_bytes(16)).decode(), "openid": openid_for(appid, user)}
    if "+union" in code:
        payload["unionid"] = unionid_for(user)
    return _ok(payload, plain)


@csrf_exempt
@require_GET
def token(request: HttpRequest) -> HttpResponse:
    appid = request.GET.get("appid", "")
    error = _app_error(appid, request.GET.get("secret", ""))
    if error is not None:
        return error
    if request.GET.get("grant_type") != "client_credential":
        return _error(40002, "invalid grant_type")
    access_token, expires_in = state.classic_token(appid)
    return _ok({"access_token": access_token, "expires_in": expires_in})


@csrf_exempt
@require_POST
def stable_token(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return _error(47001, "data format error")
    if not isinstance(body, dict):
        return _error(47001, "data format error")
    appid = str(body.get("appid", ""))
    error = _app_error(appid, str(body.get("secret", "")))
    if error is not None:
        return error
    if body.get("grant_type") != "client_credential":
        return _error(40002, "invalid grant_type")
    access_token, expires_in = state.stable_token(appid, force_refresh=body.get("force_refresh") is True)
    return _ok({"access_token": access_token, "expires_in": expires_in})


# --- subscribe messages ----------------------------------------------------------------------------

_CJK = r"\u3400-\u9fff\uf900-\ufaff"
VALUE_RULES: dict[str, tuple[int, re.Pattern[str] | None]] = {
    "thing": (20, None),
    "number": (32, re.compile(r"-?\d+(\.\d+)?")),
    "letter": (32, re.compile(r"[A-Za-z]+")),
    "symbol": (5, None),
    "character_string": (32, re.compile(r"[\x21-\x7e]+")),
    "time": (40, re.compile(rf"[0-9{_CJK}:\-/ ~]+")),
    "date": (40, re.compile(rf"[0-9{_CJK}:\-/ ~]+")),
    "amount": (16, re.compile(r"[¥￥]?\d+(\.\d{1,2})?元?")),
    "phone_number": (17, re.compile(r"[0-9+\-]+")),
    "car_number": (8, None),
    "name": (20, None),
    "phrase": (5, re.compile(rf"[{_CJK}]+")),
}


def _value_is_valid(data_key: str, value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    kind = data_key.rstrip("0123456789")
    limit, pattern = VALUE_RULES.get(kind, (200, None))
    return len(value) <= limit and (pattern is None or pattern.fullmatch(value) is not None)


def _data_error(data: Any) -> str | None:
    if not isinstance(data, dict) or not data:
        return "argument invalid! data is not a object"
    for data_key, item in data.items():
        value = item.get("value") if isinstance(item, dict) else None
        if not _value_is_valid(data_key, value):
            return f"argument invalid! data.{data_key}.value invalid"
    return None


@csrf_exempt
@require_POST
def subscribe_send(request: HttpRequest) -> HttpResponse:
    access_token = request.GET.get("access_token", "")
    if not access_token:
        return _error(41001, "access_token missing")
    appid = state.token_appid(access_token)
    if appid is None:
        return _error(40001, "invalid credential, access_token is invalid or not latest")
    try:
        body = json.loads(request.body)
    except ValueError:
        return _error(47001, "data format error")
    if not isinstance(body, dict):
        return _error(47001, "data format error")
    touser = body.get("touser")
    if not isinstance(touser, str) or not touser:
        return _error(40003, "invalid openid")
    for prefix, (errcode, errmsg) in MAGIC_OPENID_ERRORS.items():
        if touser.startswith(prefix):
            return _error(errcode, errmsg)
    template_id = body.get("template_id")
    if not isinstance(template_id, str) or not template_id or template_id.startswith("err40037"):
        return _error(40037, "invalid template_id")
    problem = _data_error(body.get("data"))
    if problem is not None:
        return _error(47003, problem)
    miniprogram_state = body.get("miniprogram_state", "formal")
    if miniprogram_state not in MINIPROGRAM_STATES:
        return _error(47003, "argument invalid! miniprogram_state invalid")
    msgid = secrets.randbelow(10**18) + 10**18
    state.record_message(
        appid,
        {
            "msgid": msgid,
            "touser": touser,
            "template_id": template_id,
            "page": body.get("page"),
            "data": body["data"],
            "miniprogram_state": miniprogram_state,
            "lang": body.get("lang", "zh_CN"),
            "sent_at": int(time.time()),
        },
    )
    return _ok({"errcode": 0, "errmsg": "ok", "msgid": msgid})


@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    """Sandbox only: what was sent to an app's users (``?appid=`` and optional ``&touser=``)."""
    appid = request.GET.get("appid", "")
    messages = state.inbox(appid, touser=request.GET.get("touser") or None)
    return _ok({"appid": appid, "messages": messages})
