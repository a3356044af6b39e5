"""Member tokens: signed, expiring, stateless.

A token carries the tenant id, the member id and its kind (access or refresh), signed with
``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` still verify during a key rotation) under a salt per kind,
so a refresh token is never accepted where an access token is expected or the other way round.
Verifying needs no database; whether the member still exists (not erased) is checked inside the
tenant context by the authentication class.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.core import signing

ACCESS = "access"
REFRESH = "refresh"
Kind = Literal["access", "refresh"]

_SALTS = {ACCESS: "jingzhun.member-token.access", REFRESH: "jingzhun.member-token.refresh"}


class TokenError(Exception):
    """The token is not one we issued for this use, or it has expired (``expired`` tells which)."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class TokenClaims:
    tenant_id: int
    member_id: int
    kind: str


def ttl_seconds(kind: Kind) -> int:
    return settings.MEMBER_TOKEN_TTL_SECONDS if kind == ACCESS else settings.MEMBER_REFRESH_TTL_SECONDS


def issue(tenant_id: int, member_id: int, kind: Kind) -> str:
    return signing.dumps({"t": tenant_id, "m": member_id, "k": kind}, salt=_SALTS[kind], compress=False)


@functools.lru_cache(maxsize=8)
def _signer(salt: str, key: str, fallbacks: tuple[str, ...]) -> signing.TimestampSigner:
    # What ``signing.loads`` builds on every call (key derivations included), once per key set.
    return signing.TimestampSigner(key=key, fallback_keys=fallbacks, salt=salt)


def verify(token: str, kind: Kind) -> TokenClaims:
    signer = _signer(_SALTS[kind], settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))
    try:
        payload = signer.unsign_object(token, serializer=signing.JSONSerializer, max_age=ttl_seconds(kind))
    except signing.SignatureExpired as exc:
        raise TokenError("token expired", expired=True) from exc
    except (signing.BadSignature, ValueError, UnicodeError) as exc:
        raise TokenError("token not valid") from exc
    if (
        not isinstance(payload, dict)
        or payload.get("k") != kind
        or not isinstance(payload.get("t"), int)
        or not isinstance(payload.get("m"), int)
    ):
        raise TokenError("token not valid")
    return TokenClaims(tenant_id=payload["t"], member_id=payload["m"], kind=kind)


def issue_pair(tenant_id: int, member_id: int) -> dict[str, object]:
    """What login and refresh answer: an access token, a refresh token and the access lifetime."""
    return {
        "token": issue(tenant_id, member_id, ACCESS),
        "refresh_token": issue(tenant_id, member_id, REFRESH),
        "expires_in": ttl_seconds(ACCESS),
    }
