"""Sandbox trade bills: the day's payments and refunds as WeChat's CSV (backtick-prefixed, yuan).

Unlike WeChat, today's bill is available at once, so the demo can reconcile without waiting a day.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
from datetime import datetime
from typing import Any

from django.core.cache import cache

from . import state

INDEX_LIMIT = 5000
BILL_TTL_S = 3600
FEE_RATE = 0.006
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
    "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def remember(mchid: str, kind: str, ident: str) -> None:
    """Index a paid order or a finished refund so the bill can list it."""
    index_key = state.key("index", mchid)
    entries = cache.get(index_key) or []
    if (kind, ident) not in entries:
        entries.append((kind, ident))
        cache.set(index_key, entries[-INDEX_LIMIT:], timeout=state.PAY_TTL_S)


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def _day(rfc3339: str) -> str:
    return rfc3339[:10] if rfc3339 else ""


def _clock(rfc3339: str) -> str:
    return datetime.fromisoformat(rfc3339).strftime("%Y-%m-%d %H:%M:%S")


def _row(values: list[str]) -> str:
    return ",".join(f"`{v}" for v in values)


def _payment_row(txn: dict[str, Any]) -> tuple[str, int, int, float]:
    fee = txn["total"] / 100 * FEE_RATE
    values = [
        _clock(txn["success_time"]), txn["appid"], txn["mchid"], "0", "", txn["transaction_id"],
        txn["out_trade_no"], txn["openid"], "JSAPI", "SUCCESS", "OTHERS", "CNY", _yuan(txn["total"]), "0.00",
        "0", "0", "0.00", "0.00", "", "", txn["description"], txn["attach"], f"{fee:.5f}", "0.60%",
        _yuan(txn["total"]), "0.00", "",
    ]
    return _row(values), txn["total"], 0, fee


def _refund_row(refund: dict[str, Any], txn: dict[str, Any]) -> tuple[str, int, int, float]:
    fee = -refund["refund"] / 100 * FEE_RATE
    values = [
        _clock(txn["success_time"]), txn["appid"], txn["mchid"], "0", "", txn["transaction_id"],
        txn["out_trade_no"], txn["openid"], "JSAPI", "REFUND", "OTHERS", "CNY", "0.00", "0.00",
        refund["refund_id"], refund["out_refund_no"], _yuan(refund["refund"]), "0.00", "ORIGINAL", "SUCCESS",
        txn["description"], txn["attach"], f"{fee:.5f}", "0.60%", "0.00", _yuan(refund["refund"]), "",
    ]
    return _row(values), 0, refund["refund"], fee


def build_bill(mchid: str, bill_date: str, bill_type: str = "ALL") -> str | None:
    """The CSV for one Beijing day, or None when nothing happened that day."""
    rows: list[tuple[str, int, int, float]] = []
    for kind, ident in cache.get(state.key("index", mchid)) or []:
        if kind == "txn" and bill_type in ("ALL", "SUCCESS"):
            txn = state.load("txn", mchid, ident)
            if txn and _day(txn["success_time"]) == bill_date:
                rows.append(_payment_row(txn))
        elif kind == "refund" and bill_type in ("ALL", "REFUND"):
            refund = state.load("refund", mchid, ident)
            txn = state.load("txn", mchid, refund["out_trade_no"]) if refund else None
            if txn and refund["status"] == "SUCCESS" and _day(refund["success_time"]) == bill_date:
                rows.append(_refund_row(refund, txn))
    if not rows:
        return None
    paid = sum(r[1] for r in rows)
    refunded = sum(r[2] for r in rows)
    fees = sum(r[3] for r in rows)
    summary = _row([str(len(rows)), _yuan(paid), _yuan(refunded), "0.00", f"{fees:.5f}", _yuan(paid), _yuan(refunded)])
    return "\r\n".join([HEADER, *(r[0] for r in rows), SUMMARY_HEADER, summary]) + "\r\n"


def publish(mchid: str, csv_text: str, gzipped: bool = False) -> tuple[str, str]:
    """Store a bill for download; returns (token, SHA-1 of the uncompressed file)."""
    token = secrets.token_urlsafe(24)
    data = csv_text.encode()
    stored = gzip.compress(data) if gzipped else data
    cache.set(state.key("bill", mchid, state.digest(token)), stored, timeout=BILL_TTL_S)
    return token, hashlib.sha1(data, usedforsecurity=False).hexdigest()


def fetch(mchid: str, token: str) -> bytes | None:
    return cache.get(state.key("bill", mchid, state.digest(token)))
