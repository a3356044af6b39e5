"""Sandbox WeChat Pay: orders, refunds, simulated payment, and the notifications WeChat would send.

``simulate_payment`` and ``simulate_refund`` are what a console button or a test calls to play
the customer and WeChat; ``send_notify`` posts a signed, encrypted notification to a notify_url.
WeChat's retry schedule is not simulated: call ``simulate_payment`` again to resend.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from tenants import resolvers
from tenants.credentials import PayCredentials
from wechat.notify import beijing_now_rfc3339, build_signed_notification, sign_notification_body
from wechat.payv3 import BEIJING

from . import bill, state
from .platform import platform_key
from .signing import SandboxPayError, notify_serial

logger = logging.getLogger(__name__)

OUT_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
NOTIFY_TIMEOUT_S = 5
TXN, REFUND, TXID = "txn", "refund", "txid"
TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "订单已关闭",
}
REFUND_FINAL = ("SUCCESS", "CLOSED")
REFUND_EVENTS = {"SUCCESS": "REFUND.SUCCESS", "CLOSED": "REFUND.CLOSED", "ABNORMAL": "REFUND.ABNORMAL"}


def _param_error(field: str, message: str) -> SandboxPayError:
    return SandboxPayError(400, "PARAM_ERROR", message, {"field": field, "location": "body"})


def _digits(prefix: str, total: int) -> str:
    return prefix + "".join(str(secrets.randbelow(10)) for _ in range(total - len(prefix)))


def _require_str(body: dict[str, Any], field: str, max_len: int, min_len: int = 1) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not min_len <= len(value) <= max_len:
        raise _param_error(f"/{field}", f"{field} 参数错误: 需为{min_len}~{max_len}个字符的字符串")
    return value


def _require_fen(amount: Any, field: str) -> int:
    value = amount.get(field) if isinstance(amount, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _param_error(f"/amount/{field}", f"amount.{field} 需为正整数（单位：分）")
    if amount.get("currency", "CNY") != "CNY":
        raise _param_error("/amount/currency", "currency 仅支持 CNY")
    return value


def _require_openid(payer: Any) -> str:
    openid = payer.get("openid") if isinstance(payer, dict) else None
    if not isinstance(openid, str) or not 1 <= len(openid) <= 128:
        raise _param_error("/payer/openid", "payer.openid 不能为空")
    return openid


def _require_out_no(value: Any, field: str) -> str:
    if not isinstance(value, str) or not OUT_NO.fullmatch(value):
        raise _param_error(f"/{field}", f"{field} 需为6~32位数字、大小写字母或_-|*")
    return value


def _require_notify_url(value: Any, field: str = "notify_url") -> str:
    if (
        not isinstance(value, str)
        or len(value) > 255
        or not value.startswith(("https://", "http://"))
        or "?" in value
    ):
        raise _param_error(f"/{field}", f"{field} 需为不带参数、不超过255字符的完整URL")
    return value


def _check_time_expire(value: Any) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _param_error("/time_expire", "time_expire 需为RFC3339格式，例如 2024-06-08T10:34:56+08:00")
    return value


def _expired(txn: dict[str, Any]) -> bool:
    if not txn.get("time_expire"):
        return False
    return datetime.fromisoformat(txn["time_expire"]).timestamp() < time.time()


# --- orders ----------------------------------------------------------------------------------------


def create_jsapi(creds: PayCredentials, body: dict[str, Any]) -> dict[str, str]:
    if body.get("mchid") != creds.mchid:
        raise _param_error("/mchid", "请求体中的mchid与签名的商户号不一致")
    appid = _require_str(body, "appid", 32)
    if creds.appid and appid != creds.appid:
        raise SandboxPayError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
    order = {
        "appid": appid,
        "mchid": creds.mchid,
        "description": _require_str(body, "description", 127),
        "out_trade_no": _require_out_no(body.get("out_trade_no"), "out_trade_no"),
        "notify_url": _require_notify_url(body.get("notify_url")),
        "total": _require_fen(body.get("amount"), "total"),
        "openid": _require_openid(body.get("payer")),
        "attach": body.get("attach") if body.get("attach") is not None else "",
        "time_expire": _check_time_expire(body.get("time_expire")),
    }
    if not isinstance(order["attach"], str) or len(order["attach"]) > 128:
        raise _param_error("/attach", "attach 不超过128个字符")
    existing = state.load(TXN, creds.mchid, order["out_trade_no"])
    if existing is not None:
        return {"prepay_id": _reuse_prepay(existing, order)}
    txn = {
        **order,
        "prepay_id": "wx" + datetime.now(BEIJING).strftime("%d%H%M%S") + secrets.token_hex(14),
        "trade_state": "NOTPAY",
        "transaction_id": "",
        "success_time": "",
        "refund_reserved": 0,
        "notify_id": "",
        "notify_body": "",
        "notify_attempts": [],
    }
    state.save(TXN, creds.mchid, order["out_trade_no"], txn)
    return {"prepay_id": txn["prepay_id"]}


def _reuse_prepay(existing: dict[str, Any], order: dict[str, Any]) -> str:
    if existing["trade_state"] in ("SUCCESS", "REFUND"):
        raise SandboxPayError(400, "ORDERPAID", "该订单已支付")
    if existing["trade_state"] == "CLOSED" or _expired(existing):
        raise SandboxPayError(400, "ORDER_CLOSED", "订单已关闭")
    if any(existing[k] != v for k, v in order.items()):
        # Same out_trade_no, other parameters: WeChat refuses; the merchant needs a new number.
        raise SandboxPayError(403, "OUT_TRADE_NO_USED", "商户订单号重复")
    return existing["prepay_id"]


def get_transaction(mchid: str, out_trade_no: str) -> dict[str, Any]:
    txn = state.load(TXN, mchid, out_trade_no)
    if txn is None:
        raise SandboxPayError(404, "ORDER_NOT_EXIST", "订单不存在")
    return txn


def get_transaction_by_id(mchid: str, transaction_id: str) -> dict[str, Any]:
    out_trade_no = state.load(TXID, mchid, transaction_id)
    if out_trade_no is None:
        raise SandboxPayError(404, "ORDER_NOT_EXIST", "订单不存在")
    return get_transaction(mchid, out_trade_no)


def _state_of(txn: dict[str, Any]) -> str:
    if txn["trade_state"] == "NOTPAY" and _expired(txn):
        return "CLOSED"
    return txn["trade_state"]


def paid_resource(txn: dict[str, Any]) -> dict[str, Any]:
    """The decrypted TRANSACTION.SUCCESS resource, field for field."""
    return {
        "mchid": txn["mchid"],
        "appid": txn["appid"],
        "out_trade_no": txn["out_trade_no"],
        "transaction_id": txn["transaction_id"],
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": TRADE_STATE_DESC["SUCCESS"],
        "bank_type": "OTHERS",
        "attach": txn["attach"],
        "success_time": txn["success_time"],
        "payer": {"openid": txn["openid"]},
        "amount": {"total": txn["total"], "payer_total": txn["total"], "currency": "CNY", "payer_currency": "CNY"},
    }


def transaction_view(txn: dict[str, Any]) -> dict[str, Any]:
    """What the query API answers."""
    trade_state = _state_of(txn)
    if txn["transaction_id"]:
        view = paid_resource(txn)
        view.update(trade_state=trade_state, trade_state_desc=TRADE_STATE_DESC[trade_state], promotion_detail=[])
        return view
    return {
        "appid": txn["appid"],
        "mchid": txn["mchid"],
        "out_trade_no": txn["out_trade_no"],
        "trade_state": trade_state,
        "trade_state_desc": TRADE_STATE_DESC[trade_state],
        "attach": txn["attach"],
        "amount": {"total": txn["total"], "currency": "CNY", "payer_currency": "CNY"},
        "promotion_detail": [],
    }


def close_transaction(mchid: str, out_trade_no: str) -> None:
    txn = get_transaction(mchid, out_trade_no)
    if txn["trade_state"] in ("SUCCESS", "REFUND"):
        raise SandboxPayError(400, "ORDERPAID", "该订单已支付")
    txn["trade_state"] = "CLOSED"
    state.save(TXN, mchid, out_trade_no, txn)


# --- refunds ------------------------------------------------------------------------------------


def create_refund(creds: PayCredentials, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("transaction_id"):
        txn = get_transaction_by_id(creds.mchid, str(body["transaction_id"]))
    else:
        txn = get_transaction(creds.mchid, _require_out_no(body.get("out_trade_no"), "out_trade_no"))
    out_refund_no = _require_out_no(body.get("out_refund_no"), "out_refund_no")
    refund_fen = _require_fen(body.get("amount"), "refund")
    total_fen = _require_fen(body.get("amount"), "total")
    notify_url = _require_notify_url(body["notify_url"]) if body.get("notify_url") else ""
    existing = state.load(REFUND, creds.mchid, out_refund_no)
    if existing is not None:
        if (existing["out_trade_no"], existing["refund"]) != (txn["out_trade_no"], refund_fen):
            raise SandboxPayError(400, "INVALID_REQUEST", "退款单号重复，且参数与首次请求不一致")
        return refund_view(existing)
    if _state_of(txn) not in ("SUCCESS", "REFUND"):
        raise SandboxPayError(400, "INVALID_REQUEST", "订单未支付，无法退款")
    if total_fen != txn["total"]:
        raise _param_error("/amount/total", "订单金额与原订单不一致")
    if refund_fen > txn["total"] - txn["refund_reserved"]:
        raise SandboxPayError(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
    refund = {
        "mchid": creds.mchid,
        "out_trade_no": txn["out_trade_no"],
        "transaction_id": txn["transaction_id"],
        "out_refund_no": out_refund_no,
        "refund_id": _digits("50", 29),
        "reason": str(body.get("reason") or ""),
        "notify_url": notify_url,
        "refund": refund_fen,
        "total": txn["total"],
        "status": "PROCESSING",
        "create_time": beijing_now_rfc3339(),
        "success_time": "",
        "notify_attempts": [],
    }
    txn["refund_reserved"] += refund_fen
    state.save(TXN, creds.mchid, txn["out_trade_no"], txn)
    state.save(REFUND, creds.mchid, out_refund_no, refund)
    return refund_view(refund)


def get_refund(mchid: str, out_refund_no: str) -> dict[str, Any]:
    refund = state.load(REFUND, mchid, out_refund_no)
    if refund is None:
        raise SandboxPayError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    return refund


def _refund_amount(refund: dict[str, Any]) -> dict[str, Any]:
    return {"total": refund["total"], "refund": refund["refund"], "payer_total": refund["total"],
            "payer_refund": refund["refund"]}


def refund_view(refund: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "refund_id": refund["refund_id"],
        "out_refund_no": refund["out_refund_no"],
        "transaction_id": refund["transaction_id"],
        "out_trade_no": refund["out_trade_no"],
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": refund["create_time"],
        "status": refund["status"],
        "funds_account": "AVAILABLE",
        "amount": {
            **_refund_amount(refund),
            "settlement_refund": refund["refund"],
            "settlement_total": refund["total"],
            "discount_refund": 0,
            "currency": "CNY",
            "from": [],
        },
        "promotion_detail": [],
    }
    if refund["success_time"]:
        view["success_time"] = refund["success_time"]
    return view


def refund_resource(refund: dict[str, Any]) -> dict[str, Any]:
    """The decrypted REFUND.* resource, field for field."""
    resource: dict[str, Any] = {
        "mchid": refund["mchid"],
        "out_trade_no": refund["out_trade_no"],
        "transaction_id": refund["transaction_id"],
        "out_refund_no": refund["out_refund_no"],
        "refund_id": refund["refund_id"],
        "refund_status": refund["status"],
        "user_received_account": "支付用户零钱",
        "amount": _refund_amount(refund),
    }
    if refund["status"] == "SUCCESS":
        resource["success_time"] = refund["success_time"]
    return resource


# --- notifications and simulation ----------------------------------------------------------------


@dataclass(frozen=True)
class NotifyAttempt:
    url: str
    status: int | None
    error: str = ""

    @property
    def acked(self) -> bool:
        return self.status in (200, 204)

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "acked": self.acked, "error": self.error}


def post_notification(url: str, headers: dict[str, str], body: bytes) -> NotifyAttempt:
    try:
        response = requests.post(url, data=body, headers=headers, timeout=NOTIFY_TIMEOUT_S)
    except requests.RequestException as exc:
        logger.info("sandbox notify to %s failed: %s", url, type(exc).__name__)
        return NotifyAttempt(url, None, type(exc).__name__)
    return NotifyAttempt(url, response.status_code)


def send_notify(
    mchid: str, notify_url: str, event_type: str, resource: dict[str, Any], original_type: str
) -> tuple[NotifyAttempt, bytes]:
    """Encrypt ``resource`` for the merchant, sign with the sandbox platform key, POST it."""
    creds = resolvers.pay_credentials_by_mchid(mchid)
    if creds is None:
        raise SandboxPayError(400, "MCH_NOT_EXISTS", "商户号不存在")
    headers, body = build_signed_notification(
        platform_key().private_pem, notify_serial(creds), creds.apiv3_key, event_type, resource, original_type
    )
    return post_notification(notify_url, headers, body), body


def _resend(mchid: str, url: str, body: bytes) -> NotifyAttempt:
    creds = resolvers.pay_credentials_by_mchid(mchid)
    if creds is None:
        raise SandboxPayError(400, "MCH_NOT_EXISTS", "商户号不存在")
    headers = sign_notification_body(platform_key().private_pem, notify_serial(creds), body)
    return post_notification(url, headers, body)


def _remember(record: dict[str, Any], attempt: NotifyAttempt) -> None:
    record["notify_attempts"] = [*record["notify_attempts"], {**attempt.as_dict(), "at": int(time.time())}][-10:]


def simulate_payment(mchid: str, out_trade_no: str) -> tuple[dict[str, Any], NotifyAttempt]:
    """The customer pays: the order becomes SUCCESS and WeChat notifies. Again = a retry."""
    txn = get_transaction(mchid, out_trade_no)
    if _state_of(txn) == "CLOSED":
        raise SandboxPayError(400, "ORDER_CLOSED", "订单已关闭")
    if not txn["transaction_id"]:
        txn.update(
            trade_state="SUCCESS",
            transaction_id=_digits("42000", 28),
            success_time=beijing_now_rfc3339(),
        )
        state.save(TXID, mchid, txn["transaction_id"], out_trade_no)
        bill.remember(mchid, TXN, out_trade_no)
    if txn["notify_body"]:
        attempt = _resend(mchid, txn["notify_url"], txn["notify_body"].encode())
    else:
        attempt, body = send_notify(mchid, txn["notify_url"], "TRANSACTION.SUCCESS", paid_resource(txn), "transaction")
        txn["notify_body"] = body.decode()
    _remember(txn, attempt)
    state.save(TXN, mchid, out_trade_no, txn)
    return transaction_view(txn), attempt


def simulate_refund(mchid: str, out_refund_no: str, status: str = "SUCCESS") -> tuple[dict[str, Any], NotifyAttempt | None]:
    """WeChat finishes a refund (SUCCESS, CLOSED or ABNORMAL) and notifies if a notify_url was given."""
    if status not in REFUND_EVENTS:
        raise _param_error("/status", "status 需为 SUCCESS、CLOSED 或 ABNORMAL")
    refund = get_refund(mchid, out_refund_no)
    if refund["status"] in REFUND_FINAL and refund["status"] != status:
        raise SandboxPayError(400, "INVALID_REQUEST", "退款已是终态")
    if refund["status"] != status:
        _apply_refund_status(refund, status)
    attempt = None
    if refund["notify_url"]:
        attempt, _ = send_notify(mchid, refund["notify_url"], REFUND_EVENTS[status], refund_resource(refund), "refund")
        _remember(refund, attempt)
    state.save(REFUND, mchid, out_refund_no, refund)
    return refund_view(refund), attempt


def _apply_refund_status(refund: dict[str, Any], status: str) -> None:
    txn = get_transaction(refund["mchid"], refund["out_trade_no"])
    refund["status"] = status
    if status == "SUCCESS":
        refund["success_time"] = beijing_now_rfc3339()
        txn["trade_state"] = "REFUND"
        bill.remember(refund["mchid"], REFUND, refund["out_refund_no"])
    elif status == "CLOSED":
        txn["refund_reserved"] -= refund["refund"]
    state.save(TXN, refund["mchid"], refund["out_trade_no"], txn)
