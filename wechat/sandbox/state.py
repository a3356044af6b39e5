"""Sandbox state in the Django cache: login codes, access tokens, sent messages, pay records.

The cache is what every process already shares (Redis in the real setup); with the local-memory
default the sandbox behaves as one WeChat per process, which is what ``runserver`` and tests need.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from django.core.cache import cache

PREFIX = "wxsandbox"
CODE_TTL_S = 300
TOKEN_TTL_S = 7200
TOKEN_OVERLAP_S = 300
PAY_TTL_S = 90 * 86400
INBOX_LIMIT = 500


def key(*parts: str) -> str:
    # Values from the outside world are hashed so any character is a valid cache key.
    return ":".join((PREFIX, *parts))


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]


# --- login codes -----------------------------------------------------------------------------------


def claim_code(appid: str, code: str) -> bool:
    """True the first time a code is used; WeChat codes are single-use for about 5 minutes."""
    return bool(cache.add(key("code", appid, digest(code)), 1, timeout=CODE_TTL_S))


# --- access tokens ------------------------------------------------------------------------------------


def _issue_token(appid: str, ttl: int = TOKEN_TTL_S) -> str:
    token = secrets.token_urlsafe(96)
    cache.set(key("token", digest(token)), appid, timeout=ttl)
    return token


def token_appid(token: str) -> str | None:
    return cache.get(key("token", digest(token))) if token else None


def _expire_soon(token: str | None, ttl: int) -> None:
    if token:
        cache.touch(key("token", digest(token)), ttl)


def classic_token(appid: str) -> tuple[str, int]:
    """``/cgi-bin/token``: every call rotates; the previous token survives for 5 minutes."""
    previous = cache.get(key("classic", appid))
    _expire_soon(previous, TOKEN_OVERLAP_S)
    token = _issue_token(appid)
    cache.set(key("classic", appid), token, timeout=TOKEN_TTL_S)
    return token, TOKEN_TTL_S


def stable_token(appid: str, force_refresh: bool) -> tuple[str, int]:
    """``/cgi-bin/stable_token``: the same token while valid, a new one in its last 5 minutes."""
    now = int(time.time())
    current = cache.get(key("stable", appid))
    if current and force_refresh:
        cache.delete(key("token", digest(current["token"])))
        current = None
    if current and current["expires_at"] - now > TOKEN_OVERLAP_S:
        return current["token"], current["expires_at"] - now
    token = _issue_token(appid)
    cache.set(key("stable", appid), {"token": token, "expires_at": now + TOKEN_TTL_S}, timeout=TOKEN_TTL_S)
    return token, TOKEN_TTL_S


def revoke_token(token: str) -> None:
    """Invalidate a token now, as another party's force_refresh would (provokes 40001)."""
    appid = token_appid(token)
    cache.delete(key("token", digest(token)))
    current = cache.get(key("stable", appid)) if appid else None
    if current and current["token"] == token:
        cache.delete(key("stable", appid))


# --- subscribe messages -------------------------------------------------------------------------------


def record_message(appid: str, message: dict[str, Any]) -> None:
    inbox_key = key("inbox", appid)
    messages = cache.get(inbox_key) or []
    messages.append(message)
    cache.set(inbox_key, messages[-INBOX_LIMIT:], timeout=PAY_TTL_S)


def inbox(appid: str, touser: str | None = None) -> list[dict[str, Any]]:
    messages = cache.get(key("inbox", appid)) or []
    return [m for m in messages if touser is None or m["touser"] == touser]


def clear_inbox(appid: str) -> None:
    cache.delete(key("inbox", appid))


# --- pay records --------------------------------------------------------------------------------------


def load(kind: str, mchid: str, ident: str) -> Any:
    return cache.get(key(kind, mchid, digest(ident)))


def save(kind: str, mchid: str, ident: str, record: Any) -> None:
    cache.set(key(kind, mchid, digest(ident)), record, timeout=PAY_TTL_S)
