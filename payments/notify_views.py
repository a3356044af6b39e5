"""The WeChat Pay notify edge (CONTRACT.md, "WeChat Pay notify"; WECHAT.md §1.4 and §2).

Order of work: raw body first (before anything parses it) → account by the token in the path
(unknown → 404) → verify → record and settle in the tenant's context → answer. Answers:

* v3: 204 once recorded (duplicates too); 401 for signature/serial/timestamp/probe failures;
  400 for an undecryptable body or a recorded notification that does not fit its order;
  503 when the database could not record it, so WeChat retries.
* v2: the XML reply; SUCCESS once verified and recorded, FAIL otherwise (HTTP 503 when not recorded).

A suspended tenant's notifications are still recorded and applied: the customer's money moved.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from payments import notify
from payments.models import Order
from tenants import resolvers
from tenants.context import tenant_context
from tenants.credentials import PayCredentials
from wechat import payv2
from wechat.errors import NotifyRejected, PayV2DataError
from wechat.notify import verify_notification

logger = logging.getLogger("jingzhun.payments.notify")


def _fail(status: int, message: str) -> JsonResponse:
    return JsonResponse({"code": "FAIL", "message": message}, status=status, json_dumps_params={"ensure_ascii": False})


# Notify bursts come per merchant; three lookups and the decryption of its keys on every one would
# be most of the work. A short-lived per-process copy; a verification failure re-reads it at once,
# so new keys (a certificate rotation) are never refused because of it.
ACCOUNT_TTL_S = 60
_accounts: dict[str, tuple[float, Any, PayCredentials]] = {}


def _account(token: str, *, fresh: bool = False) -> tuple[Any, PayCredentials] | None:
    """(tenant, credentials) for the notify token, or None. Raises DatabaseError when the DB is down."""
    now = time.monotonic()
    cached = None if fresh else _accounts.get(token)
    if cached is not None and now - cached[0] < ACCOUNT_TTL_S:
        return cached[1], cached[2]
    account = resolvers.pay_account_by_notify_token(token)
    creds = resolvers.pay_credentials_for(account.tenant) if account is not None else None
    if account is None or creds is None:
        _accounts.pop(token, None)
        return None
    if len(_accounts) > 1000:
        _accounts.clear()
    _accounts[token] = (now, account.tenant, creds)
    return account.tenant, creds


def _verify(token: str, request: HttpRequest, body: bytes, creds: PayCredentials):
    try:
        return verify_notification(request.headers, body, creds), creds
    except NotifyRejected:
        latest = _account(token, fresh=True)
        if latest is None or latest[1] == creds:
            raise
        return verify_notification(request.headers, body, latest[1]), latest[1]


def _skip_connection_health_check() -> None:
    """No ``SELECT 1`` before this request's first statement: a fifth of a notify's round trips.

    A notify that meets a dead pooled connection fails its first statement instead and is answered
    503, which WeChat retries; Django discards the broken connection when the request ends.
    """
    connection.health_check_done = True


@csrf_exempt
def notify_v3(request: HttpRequest, token: str) -> HttpResponse:
    # Read the exact bytes before anything could parse and re-serialise them (WECHAT.md §5.1).
    body = request.body
    if request.method != "POST":
        return _fail(405, "POST only")
    _skip_connection_health_check()
    try:
        found = _account(token)
    except DatabaseError:
        logger.exception("notify v3: database unavailable while resolving the account")
        return _fail(503, "暂时无法处理，请重试")
    if found is None:
        return _fail(404, "unknown notify url")
    tenant, creds = found
    try:
        verified, creds = _verify(token, request, body, creds)
    except DatabaseError:
        logger.exception("notify v3: database unavailable while re-reading the account")
        return _fail(503, "暂时无法处理，请重试")
    except NotifyRejected as exc:
        log = logger.info if exc.reason_code == "signature_probe" else logger.warning
        log("notify v3 rejected for tenant %s: %s", tenant.pk, exc.reason_code)
        return _fail(exc.http_status, exc.message)
    try:
        handled = notify.handle_v3(tenant, creds, verified)
    except DatabaseError:
        logger.exception("notify v3 %s for tenant %s not recorded", verified.id, tenant.pk)
        return _fail(503, "暂时无法处理，请重试")
    if handled.flagged:
        return _fail(400, f"not applied: {handled.reason}")
    return HttpResponse(status=204)


def _xml(success: bool, message: str = "OK", status: int = 200) -> HttpResponse:
    return HttpResponse(payv2.reply_xml(success, message), status=status, content_type="application/xml")


@csrf_exempt
def notify_v2(request: HttpRequest, token: str) -> HttpResponse:
    body = request.body
    if request.method != "POST":
        return _xml(False, "POST only", status=405)
    _skip_connection_health_check()
    try:
        found = _account(token)
    except DatabaseError:
        logger.exception("notify v2: database unavailable while resolving the account")
        return _xml(False, "SYSTEM_BUSY", status=503)
    if found is None:
        return _xml(False, "unknown notify url", status=404)
    tenant, creds = found
    if not creds.v2_key:
        return _xml(False, "API v2 is not configured for this merchant")
    try:
        fields = payv2.parse_xml(body)
    except PayV2DataError as exc:
        logger.warning("notify v2 for tenant %s: unreadable XML (%s)", tenant.pk, exc)
        return _xml(False, "bad XML")
    if fields.get("return_code") != "SUCCESS":
        return _xml(False, "return_code is not SUCCESS")
    raw = body.decode("utf-8", "replace")
    try:
        if "req_info" in fields:
            return _v2_refund(tenant, creds, fields, raw)
        return _v2_payment(tenant, creds, fields, raw)
    except DatabaseError:
        logger.exception("notify v2 for tenant %s not recorded", tenant.pk)
        return _xml(False, "SYSTEM_BUSY", status=503)


def _v2_payment(tenant, creds, fields: dict[str, str], raw: str) -> HttpResponse:
    with tenant_context(tenant):
        sign_type = (
            Order.objects.filter(out_trade_no=fields.get("out_trade_no", ""))
            .values_list("v2_sign_type", flat=True).first()
        )
    if not payv2.verify(fields, creds.v2_key, sign_type or payv2.MD5):
        logger.warning("notify v2 for tenant %s: bad signature", tenant.pk)
        return _xml(False, "签名失败")
    notify.handle_v2_payment(tenant, creds, fields, raw)
    return _xml(True)


def _v2_refund(tenant, creds, outer: dict[str, str], raw: str) -> HttpResponse:
    # Refund notifies carry no sign: req_info decrypting under the merchant's key is the proof.
    if outer.get("mch_id") != creds.mchid or (creds.appid and outer.get("appid") != creds.appid):
        logger.warning("notify v2 refund for tenant %s: mch_id/appid do not match", tenant.pk)
        return _xml(False, "mch_id/appid mismatch")
    try:
        req_info = payv2.decrypt_refund_req_info(outer["req_info"], creds.v2_key)
    except PayV2DataError:
        logger.warning("notify v2 refund for tenant %s: req_info does not decrypt", tenant.pk)
        return _xml(False, "req_info 解密失败")
    notify.handle_v2_refund(tenant, creds, outer, req_info, raw)
    return _xml(True)
