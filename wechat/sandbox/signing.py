"""How the sandbox checks a merchant's ``Authorization`` and signs its own answers, as WeChat does."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse

from tenants import resolvers
from tenants.credentials import PayCredentials
from wechat.payv3 import (
    MAX_CLOCK_SKEW_S,
    PUBLIC_KEY_ID_PREFIX,
    SIGNATURE_SCHEME,
    make_nonce,
    parse_authorization,
    public_key_pem_of,
    request_message,
    sign_response,
    verify_request_signature,
)

from .platform import platform_key


class SandboxPayError(Exception):
    """An answer WeChat Pay would give instead of a result."""

    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


def signed_path(request: HttpRequest) -> str:
    """The request target as the merchant signed it (servers hand Django an unquoted path)."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        return raw
    query = request.META.get("QUERY_STRING", "")
    return quote(request.path, safe="/*-_.~") + (f"?{query}" if query else "")


def _sign_error(message: str, detail: dict[str, Any] | None = None) -> SandboxPayError:
    return SandboxPayError(401, "SIGN_ERROR", message, detail)


def authenticate(request: HttpRequest) -> PayCredentials:
    """The merchant behind a correctly signed request, or a SandboxPayError (401 SIGN_ERROR)."""
    pairs = parse_authorization(request.headers.get("Authorization", ""))
    if pairs is None:
        raise _sign_error("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》")
    creds = resolvers.pay_credentials_by_mchid(pairs["mchid"])
    if creds is None:
        raise SandboxPayError(400, "MCH_NOT_EXISTS", "商户号不存在")
    timestamp = pairs["timestamp"]
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_S:
        raise _sign_error("Http头Authorization中的timestamp与发起请求的时间不得超过5分钟")
    if creds.merchant_cert_serial and pairs["serial_no"].upper() != creds.merchant_cert_serial.upper():
        raise _sign_error("商户证书序列号有误。请使用签名私钥匹配的证书序列号")
    try:
        body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        body = None
    message = request_message(request.method or "", signed_path(request), timestamp, pairs["nonce_str"], body or "")
    public_pem = public_key_pem_of(creds.merchant_private_key_pem)
    if body is None or not verify_request_signature(public_pem, message, pairs["signature"]):
        raise _sign_error(
            "签名错误，请检查后再试",
            {
                "field": "signature",
                "location": "authorization",
                "sign_information": {
                    "method": request.method,
                    "url": signed_path(request),
                    "sign_message_length": len(message.encode()),
                    "truncated_sign_message": message[:200],
                },
            },
        )
    return creds


def answer_serial(request: HttpRequest) -> str:
    """Public-key merchants name the key in ``Wechatpay-Serial``; others get the certificate's serial."""
    key = platform_key()
    asked = request.headers.get("Wechatpay-Serial", "")
    return key.public_key_id if asked.startswith(PUBLIC_KEY_ID_PREFIX) else key.cert_serial


def notify_serial(creds: PayCredentials) -> str:
    """Sign notifications the way this merchant is configured to verify them."""
    key = platform_key()
    if creds.public_key_id == key.public_key_id:
        return key.public_key_id
    if any(serial.upper() == key.cert_serial for serial in creds.platform_certs):
        return key.cert_serial
    return key.public_key_id


def signed_response(status: int, payload: dict[str, Any] | None, serial: str | None = None) -> HttpResponse:
    """An answer signed with the sandbox platform key, as every WeChat Pay answer is."""
    body = b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    key = platform_key()
    timestamp, nonce = str(int(time.time())), make_nonce()
    response = HttpResponse(body, status=status, content_type="application/json; charset=utf-8")
    if payload is None:
        del response["Content-Type"]
    response["Request-ID"] = secrets.token_hex(16).upper()
    response["Wechatpay-Timestamp"] = timestamp
    response["Wechatpay-Nonce"] = nonce
    response["Wechatpay-Signature"] = sign_response(key.private_pem, timestamp, nonce, body)
    response["Wechatpay-Serial"] = serial or key.public_key_id
    response["Wechatpay-Signature-Type"] = SIGNATURE_SCHEME
    return response
