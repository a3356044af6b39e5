"""WeChat Pay's daily trade bill (交易账单): read it, and compare it with our paid orders.

The bill is CSV with a header row, one row per transaction or refund with every value prefixed
by a backtick, then a summary header (总交易单数…) and a summary row. Amounts are in yuan.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

OUT_TRADE_NO = "商户订单号"
TRANSACTION_ID = "微信订单号"
STATE = "交易状态"
TOTAL = "订单金额"
SETTLEMENT_TOTAL = "应结订单金额"
SUMMARY_MARK = "总交易单数"


@dataclass(frozen=True)
class BillRow:
    out_trade_no: str
    transaction_id: str
    state: str
    total_fen: int


def _clean(value: str) -> str:
    return value.strip().lstrip("`").strip()


def yuan_to_fen(value: str) -> int:
    try:
        return int((Decimal(_clean(value) or "0") * 100).to_integral_exact())
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount in yuan: {value!r}") from None


def parse_trade_bill(text: str) -> list[BillRow]:
    """The transaction rows of a trade bill (summary lines dropped). Raises ValueError if unreadable."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        return []
    names = [_clean(h) for h in header]
    if OUT_TRADE_NO not in names or STATE not in names:
        raise ValueError("not a WeChat Pay trade bill: missing 商户订单号/交易状态 columns")
    index = {name: i for i, name in enumerate(names)}
    amount_column = TOTAL if TOTAL in index else SETTLEMENT_TOTAL
    rows: list[BillRow] = []
    for raw in reader:
        if not raw or not any(cell.strip() for cell in raw):
            continue
        if _clean(raw[0]).startswith(SUMMARY_MARK):
            break
        values = [_clean(cell) for cell in raw]
        if len(values) < len(names):
            raise ValueError("trade bill row is shorter than its header")
        rows.append(BillRow(
            out_trade_no=values[index[OUT_TRADE_NO]],
            transaction_id=values[index[TRANSACTION_ID]] if TRANSACTION_ID in index else "",
            state=values[index[STATE]],
            total_fen=yuan_to_fen(values[index[amount_column]]),
        ))
    return rows


@dataclass(frozen=True)
class OurPayment:
    out_trade_no: str
    transaction_id: str
    payable_fen: int


def differences(bill: Iterable[BillRow], ours: Iterable[OurPayment]) -> list[dict]:
    """What does not match between WeChat's successful payments of a day and our paid orders of it."""
    wechat = {row.out_trade_no: row for row in bill if row.state == "SUCCESS"}
    mine = {p.out_trade_no: p for p in ours}
    found: list[dict] = []
    for number, row in sorted(wechat.items()):
        paid = mine.get(number)
        if paid is None:
            found.append({"kind": "missing_here", "out_trade_no": number, "transaction_id": row.transaction_id,
                          "wechat_fen": row.total_fen})
        elif paid.payable_fen != row.total_fen:
            found.append({"kind": "amount_differs", "out_trade_no": number, "wechat_fen": row.total_fen,
                          "ours_fen": paid.payable_fen})
        elif row.transaction_id and paid.transaction_id != row.transaction_id:
            found.append({"kind": "transaction_differs", "out_trade_no": number,
                          "transaction_id": row.transaction_id, "ours": paid.transaction_id})
    for number, paid in sorted(mine.items()):
        if number not in wechat:
            found.append({"kind": "missing_at_wechat", "out_trade_no": number, "ours_fen": paid.payable_fen})
    return found
