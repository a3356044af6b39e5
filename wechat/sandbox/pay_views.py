"""Sandbox WeChat Pay v3 endpoints (merchant-signed, answers signed) and the simulation helpers."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from tenants.credentials import PayCredentials

from . import pay
from .signing import SandboxPayError, authenticate, signed_response

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
        try:
            creds = authenticate(request)
            payload = view(request, creds, *args, **kwargs)
        except SandboxPayError as exc:
            return signed_response(exc.status, exc.payload())
        return signed_response(204 if payload is None else 200, payload)

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
