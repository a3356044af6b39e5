"""Sandbox WeChat Pay v3 endpoints (merchant-signed, answers signed) and the simulation helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from cryptography import x509
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tenants.credentials import PayCredentials
from wechat.payv3 import BEIJING, aesgcm_encrypt, make_nonce

from . import bill, pay
from .platform import platform_key
from .signing import SandboxPayError, answer_serial, authenticate, signed_response

PayView = Callable[..., HttpResponse]


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SandboxPayError(400, "PARAM_ERROR", "请求体不是合法的JSON对象")
    return body


def merchant_signed(view: Callable[..., dict[str, Any] | None]) -> PayView:
    """Authenticate the merchant, run the view, sign whatever comes back (None = 204)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        serial = answer_serial(request)
        try:
            creds = authenticate(request)
            payload = view(request, creds, *args, **kwargs)
        except SandboxPayError as exc:
            return signed_response(exc.status, exc.payload(), serial)
        return signed_response(204 if payload is None else 200, payload, serial)

    return wrapper


def _require_query_mchid(request: HttpRequest, creds: PayCredentials) -> None:
    if request.GET.get("mchid") != creds.mchid:
        raise SandboxPayError(400, "PARAM_ERROR", "mchid 与签名的商户号不一致", {"field": "mchid", "location": "query"})


@require_POST
@merchant_signed
def jsapi(request: HttpRequest, creds: PayCredentials) -> dict[str, Any]:
    return pay.create_jsapi(creds, _json_body(request))


@require_GET
@merchant_signed
def query_by_out_trade_no(request: HttpRequest, creds: PayCredentials, out_trade_no: str) -> dict[str, Any]:
    _require_query_mchid(request, creds)
    return pay.transaction_view(pay.get_transaction(creds.mchid, out_trade_no))


@require_GET
@merchant_signed
def query_by_transaction_id(request: HttpRequest, creds: PayCredentials, transaction_id: str) -> dict[str, Any]:
    _require_query_mchid(request, creds)
    return pay.transaction_view(pay.get_transaction_by_id(creds.mchid, transaction_id))


@require_POST
@merchant_signed
def close(request: HttpRequest, creds: PayCredentials, out_trade_no: str) -> None:
    if _json_body(request).get("mchid") != creds.mchid:
        raise SandboxPayError(400, "PARAM_ERROR", "mchid 与签名的商户号不一致")
    pay.close_transaction(creds.mchid, out_trade_no)


@require_POST
@merchant_signed
def refund(request: HttpRequest, creds: PayCredentials) -> dict[str, Any]:
    return pay.create_refund(creds, _json_body(request))


@require_GET
@merchant_signed
def query_refund(request: HttpRequest, creds: PayCredentials, out_refund_no: str) -> dict[str, Any]:
    return pay.refund_view(pay.get_refund(creds.mchid, out_refund_no))


@require_GET
@merchant_signed
def certificates(request: HttpRequest, creds: PayCredentials) -> dict[str, Any]:
    key = platform_key()
    cert = x509.load_pem_x509_certificate(key.cert_pem.encode())
    nonce = make_nonce(12)
    return {
        "data": [
            {
                "serial_no": key.cert_serial,
                "effective_time": cert.not_valid_before_utc.astimezone(BEIJING).isoformat(timespec="seconds"),
                "expire_time": cert.not_valid_after_utc.astimezone(BEIJING).isoformat(timespec="seconds"),
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": nonce,
                    "associated_data": "certificate",
                    "ciphertext": aesgcm_encrypt(creds.apiv3_key, nonce, "certificate", key.cert_pem.encode()),
                },
            }
        ]
    }


BILL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@require_GET
@merchant_signed
def trade_bill(request: HttpRequest, creds: PayCredentials) -> dict[str, Any]:
    bill_date = request.GET.get("bill_date", "")
    bill_type = request.GET.get("bill_type", "ALL")
    if not BILL_DATE.fullmatch(bill_date) or bill_type not in ("ALL", "SUCCESS", "REFUND"):
        raise SandboxPayError(400, "PARAM_ERROR", "bill_date 需为 YYYY-MM-DD，bill_type 需为 ALL/SUCCESS/REFUND")
    csv_text = bill.build_bill(creds.mchid, bill_date, bill_type)
    if csv_text is None:
        raise SandboxPayError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
    token, sha1 = bill.publish(creds.mchid, csv_text, gzipped=request.GET.get("tar_type") == "GZIP")
    download_url = f"{settings.WECHATPAY_API_BASE}/v3/billdownload/file?{urlencode({'token': token})}"
    return {"hash_type": "SHA1", "hash_value": sha1, "download_url": download_url}


@csrf_exempt
@require_GET
def bill_download(request: HttpRequest) -> HttpResponse:
    """The file itself: merchant-signed request, unsigned answer (as WeChat does)."""
    try:
        creds = authenticate(request)
    except SandboxPayError as exc:
        return signed_response(exc.status, exc.payload(), answer_serial(request))
    data = bill.fetch(creds.mchid, request.GET.get("token", ""))
    if data is None:
        return signed_response(
            404, {"code": "RESOURCE_NOT_EXISTS", "message": "账单文件不存在或已过期"}, answer_serial(request)
        )
    return HttpResponse(data, content_type="application/octet-stream")


# --- sandbox-only simulation (unsigned, like a test console) -----------------------------------------


def _simulation(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> PayView:
    @csrf_exempt
    @require_POST
    @wraps(handler)
    def wrapper(request: HttpRequest) -> HttpResponse:
        try:
            return JsonResponse(handler(_json_body(request)), json_dumps_params={"ensure_ascii": False})
        except SandboxPayError as exc:
            return JsonResponse(exc.payload(), status=exc.status, json_dumps_params={"ensure_ascii": False})

    return wrapper


@_simulation
def simulate_pay(body: dict[str, Any]) -> dict[str, Any]:
    transaction, attempt = pay.simulate_payment(str(body.get("mchid", "")), str(body.get("out_trade_no", "")))
    return {"transaction": transaction, "notify": attempt.as_dict()}


@_simulation
def simulate_refund(body: dict[str, Any]) -> dict[str, Any]:
    refund_state, attempt = pay.simulate_refund(
        str(body.get("mchid", "")), str(body.get("out_refund_no", "")), str(body.get("status", "SUCCESS"))
    )
    return {"refund": refund_state, "notify": attempt.as_dict() if attempt else None}
