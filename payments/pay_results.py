"""What WeChat says about a payment or a refund, in one shape whichever way it arrived.

A v3 notify, a v2 notify and a v3 query all become a ``PaymentResult`` / ``RefundResult`` so the
same business checks and the same transition apply to each (WECHAT.md §1.4 step 7, §1.5, §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class PaymentResult:
    mchid: str
    appid: str
    out_trade_no: str
    transaction_id: str
    trade_state: str
    total_fen: int | None
    currency: str
    success_time: datetime | None
    payer_openid: str = ""


@dataclass(frozen=True)
class RefundResult:
    mchid: str
    out_trade_no: str
    out_refund_no: str
    refund_id: str
    status: str  # SUCCESS, CLOSED, ABNORMAL, PROCESSING
    refund_fen: int | None
    success_time: datetime | None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _rfc3339(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _beijing(value: Any, fmt: str) -> datetime | None:
    """v2 times are naive Beijing time (WECHAT.md §5.8)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=BEIJING).astimezone(UTC)
    except ValueError:
        return None


def payment_from_v3(resource: dict[str, Any]) -> PaymentResult:
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    payer = resource.get("payer") if isinstance(resource.get("payer"), dict) else {}
    return PaymentResult(
        mchid=str(resource.get("mchid", "")),
        appid=str(resource.get("appid", "")),
        out_trade_no=str(resource.get("out_trade_no", "")),
        transaction_id=str(resource.get("transaction_id", "") or ""),
        trade_state=str(resource.get("trade_state", "")),
        total_fen=_int(amount.get("total")),
        currency=str(amount.get("currency", "")),
        success_time=_rfc3339(resource.get("success_time")),
        payer_openid=str(payer.get("openid", "")),
    )


def refund_from_v3(resource: dict[str, Any]) -> RefundResult:
    amount = resource.get("amount") if isinstance(resource.get("amount"), dict) else {}
    return RefundResult(
        mchid=str(resource.get("mchid", "")),
        out_trade_no=str(resource.get("out_trade_no", "")),
        out_refund_no=str(resource.get("out_refund_no", "")),
        refund_id=str(resource.get("refund_id", "")),
        status=str(resource.get("refund_status") or resource.get("status") or ""),
        refund_fen=_int(amount.get("refund")),
        success_time=_rfc3339(resource.get("success_time")),
    )


def payment_from_v2(fields: dict[str, str]) -> PaymentResult:
    return PaymentResult(
        mchid=fields.get("mch_id", ""),
        appid=fields.get("appid", ""),
        out_trade_no=fields.get("out_trade_no", ""),
        transaction_id=fields.get("transaction_id", ""),
        trade_state="SUCCESS" if fields.get("result_code") == "SUCCESS" else fields.get("result_code", ""),
        total_fen=_int(fields.get("total_fee")),
        currency=fields.get("fee_type") or "CNY",  # v2 omits fee_type for CNY
        success_time=_beijing(fields.get("time_end"), "%Y%m%d%H%M%S"),
        payer_openid=fields.get("openid", ""),
    )


_V2_REFUND_STATUS = {"SUCCESS": "SUCCESS", "CHANGE": "ABNORMAL", "REFUNDCLOSE": "CLOSED"}


def refund_from_v2(outer: dict[str, str], req_info: dict[str, str]) -> RefundResult:
    return RefundResult(
        mchid=outer.get("mch_id", ""),
        out_trade_no=req_info.get("out_trade_no", ""),
        out_refund_no=req_info.get("out_refund_no", ""),
        refund_id=req_info.get("refund_id", ""),
        status=_V2_REFUND_STATUS.get(req_info.get("refund_status", ""), req_info.get("refund_status", "")),
        refund_fen=_int(req_info.get("refund_fee")),
        success_time=_beijing(req_info.get("success_time"), "%Y-%m-%d %H:%M:%S"),
    )
