"""Mini Program sign-in: ``wx.login()`` code → WeChat code2session → our member and tokens.

The tenant comes from the ``X-WX-AppId`` header, once. The WeChat call is made before any
transaction opens (it may take seconds; no connection or row lock is held meanwhile), and the
``session_key`` it returns is dropped here: we issue our own tokens and never store, log or answer it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rest_framework import status

from profiles import actions, queries, tokens
from profiles.authentication import TokenRejected, rejected, tenant_of
from profiles.models import Member
from tenants import resolvers
from tenants.api import APIError
from tenants.context import tenant_context
from tenants.credentials import MiniProgramCredentials
from tenants.models import Tenant
from wechat import miniprogram
from wechat.errors import WeChatAPIError, WeChatUnavailable

logger = logging.getLogger(__name__)


class LoginError(APIError):
    def __init__(self, code: str, message: str, status_code: int, *, errcode: int | None = None,
                 retry_after: int | None = None):
        super().__init__(code, message, status_code, {"errcode": errcode} if errcode is not None else None,
                         retry_after=retry_after)


# errcode → (HTTP status, our code, message). Anything else from WeChat counts as unavailable.
WECHAT_ERRORS: dict[int, tuple[int, str, str]] = {
    40029: (400, "invalid_code", "The login code is not valid; call wx.login() again."),
    40163: (400, "invalid_code", "The login code has already been used; call wx.login() again."),
    45011: (429, "wechat_rate_limited", "WeChat limits how often this user can sign in; try again in a minute."),
    40226: (403, "wechat_user_blocked", "WeChat has blocked this user as high-risk."),
    40013: (503, "wechat_misconfigured", "This Mini Program's WeChat settings are wrong; the merchant must fix them."),
    40125: (503, "wechat_misconfigured", "This Mini Program's WeChat settings are wrong; the merchant must fix them."),
}
UNAVAILABLE = (503, "wechat_unavailable", "WeChat is not answering right now; try again shortly.")


@dataclass(frozen=True)
class LoginResult:
    tenant: Tenant
    member: Member
    tokens: dict[str, object]


def app_tenant(appid: str) -> tuple[Tenant, MiniProgramCredentials]:
    """The tenant whose Mini Program this is; 404 ``unknown_app``, 403 ``tenant_suspended``."""
    creds = resolvers.mini_program_credentials(appid) if appid else None
    tenant = resolvers.tenant_by_id(creds.tenant_id) if creds else None
    if creds is None or tenant is None:
        raise APIError("unknown_app", "No Mini Program is registered with this AppID.", status.HTTP_404_NOT_FOUND)
    if not tenant.is_active:
        raise APIError("tenant_suspended", "This merchant's service is suspended.", status.HTTP_403_FORBIDDEN)
    return tenant, creds


def exchange_code(creds: MiniProgramCredentials, code: str) -> dict[str, str]:
    if not creds.secret:
        logger.error("Mini Program %s has no AppSecret configured", creds.appid)
        http_status, our_code, message = WECHAT_ERRORS[40125]
        raise LoginError(our_code, message, http_status)
    try:
        return miniprogram.code_to_session(creds, code)
    except WeChatAPIError as exc:
        http_status, our_code, message = WECHAT_ERRORS.get(exc.errcode, UNAVAILABLE)
        if our_code in ("wechat_misconfigured", "wechat_unavailable"):
            logger.error("code2session for appid %s failed: errcode %s", creds.appid, exc.errcode)
        retry = 60 if http_status == 429 else (30 if our_code == "wechat_unavailable" else None)
        raise LoginError(our_code, message, http_status, errcode=exc.errcode, retry_after=retry) from None
    except WeChatUnavailable as exc:
        logger.warning("code2session for appid %s: %s", creds.appid, exc)
        raise LoginError(UNAVAILABLE[1], UNAVAILABLE[2], UNAVAILABLE[0], retry_after=30) from None


def wx_login(appid: str, code: str) -> LoginResult:
    tenant, creds = app_tenant(appid)
    session = exchange_code(creds, code)
    member = actions.sign_in_member(tenant, openid=session["openid"], unionid=session.get("unionid", ""))
    return LoginResult(tenant=tenant, member=member, tokens=tokens.issue_pair(tenant.pk, member.pk))


def refresh(refresh_token: str) -> dict[str, object]:
    """A fresh token pair for a valid refresh token of a member who still exists."""
    try:
        claims = tokens.verify(refresh_token, tokens.REFRESH)
    except tokens.TokenError as exc:
        raise rejected(exc) from None
    tenant = tenant_of(claims)
    if not tenant.is_active:
        raise APIError("tenant_suspended", "This merchant's service is suspended.", status.HTTP_403_FORBIDDEN)
    with tenant_context(tenant):
        try:
            member = queries.get_member(claims.member_id)
        except queries.MemberNotFound:
            raise TokenRejected() from None
    return tokens.issue_pair(tenant.pk, member.pk)
