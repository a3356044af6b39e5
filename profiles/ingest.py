"""Reading a batch of behaviour events (``POST /api/v1/events``) into rows ready to insert.

Built for volume: the body is decoded by msgspec straight into typed structs; ``props`` stays as
the raw JSON text it arrived as (its size is then known without re-encoding, and PostgreSQL parses
it once into jsonb). Only when the whole batch does not decode cleanly is each event decoded on
its own, to say which ones are wrong. No database access here: SKUs are checked by the caller in
one query for the whole batch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import msgspec

MAX_EVENTS = 500
MAX_EVENT_ID = 64
MAX_SKU = 64
MAX_PROPS_BYTES = 4096
MAX_FUTURE = dt.timedelta(minutes=5)
MAX_AGE = dt.timedelta(days=30)
KINDS = frozenset({"view", "click", "share", "add_to_cart", "purchase", "coupon_claim", "coupon_use", "push_open"})

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_EMPTY_PROPS = b"{}"


class EventIn(msgspec.Struct):
    event_id: str
    kind: str
    ts: str | int
    sku: str | None = None
    props: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _Batch(msgspec.Struct):
    events: list[EventIn]


class _LooseBatch(msgspec.Struct):
    events: list[msgspec.Raw]


_batch_decoder = msgspec.json.Decoder(_Batch)
_loose_decoder = msgspec.json.Decoder(_LooseBatch)
_event_decoder = msgspec.json.Decoder(EventIn)
_props_decoder = msgspec.json.Decoder(dict)


class BatchError(Exception):
    """The batch as a whole is refused (400); no event of it is stored."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Rejection:
    index: int
    code: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass
class EventRow:
    """A valid event, its time as integer microseconds since the epoch (UTC)."""

    index: int
    event_id: str
    kind: str
    ts_us: int
    sku: str | None
    props: bytes  # a JSON object, as the client wrote it
    amount_fen: int | None = None
    item_skus: tuple[str, ...] = ()


@dataclass
class ParsedBatch:
    rows: list[EventRow] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    total: int = 0


_FIELD_CODES = {
    "event_id": "invalid_event_id",
    "kind": "invalid_kind",
    "ts": "invalid_ts",
    "sku": "invalid_sku",
    "props": "invalid_props",
}


def _decode_error_code(message: str) -> str:
    for name, code in _FIELD_CODES.items():
        if f"`$.{name}`" in message or f"field `{name}`" in message:
            return code
    return "invalid_event"


def decode(body: bytes) -> tuple[list[EventIn | Rejection], int]:
    """The events of the batch, each decoded or rejected, in order; and how many there were."""
    try:
        events: list[EventIn | Rejection] = list(_batch_decoder.decode(body).events)
    except msgspec.DecodeError:
        pass
    else:
        if len(events) > MAX_EVENTS:
            raise BatchError("batch_too_large", f"A batch holds at most {MAX_EVENTS} events; this one has {len(events)}.")
        return events, len(events)
    try:
        raws = _loose_decoder.decode(body).events
    except msgspec.ValidationError as exc:
        raise BatchError("invalid_batch", f'The body must be {{"events": [...]}}: {exc}') from None
    except msgspec.DecodeError:
        raise BatchError("malformed_json", "The body is not valid JSON.") from None
    if len(raws) > MAX_EVENTS:
        raise BatchError("batch_too_large", f"A batch holds at most {MAX_EVENTS} events; this one has {len(raws)}.")
    decoded: list[EventIn | Rejection] = []
    for index, raw in enumerate(raws):
        try:
            decoded.append(_event_decoder.decode(raw))
        except msgspec.DecodeError as exc:
            message = str(exc)
            decoded.append(Rejection(index, _decode_error_code(message), message))
    return decoded, len(raws)


def _printable(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


def _ts_us(ts: str | int) -> int | None:
    if isinstance(ts, int):
        return ts * 1000
    try:
        parsed = dt.datetime.fromisoformat(ts)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return (parsed - _EPOCH) // _US


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _purchase(props: dict, index: int) -> tuple[int, tuple[str, ...]] | Rejection:
    amount = props.get("amount_fen")
    if type(amount) is not int or amount < 0:
        return Rejection(index, "invalid_amount", "A purchase needs props.amount_fen, a non-negative integer (fen).")
    items = props.get("items", [])
    if not isinstance(items, list) or not all(
        isinstance(line, dict) and isinstance(line.get("sku"), str) and _printable(line["sku"], MAX_SKU)
        and (type(line.get("qty", 1)) is int and line.get("qty", 1) > 0)
        for line in items
    ):
        return Rejection(index, "invalid_items", 'props.items must be a list of {"sku", "qty"?} objects.')
    return amount, tuple(line["sku"] for line in items)


def check(event: EventIn, index: int, earliest_us: int, latest_us: int) -> EventRow | Rejection:
    """One event on its own: everything but the existence of its SKUs. Times in epoch microseconds."""
    if not _printable(event.event_id, MAX_EVENT_ID):
        return Rejection(index, "invalid_event_id", f"event_id must be 1-{MAX_EVENT_ID} printable characters.")
    if event.kind not in KINDS:
        return Rejection(index, "invalid_kind", f"Unknown kind {event.kind[:32]!r}.")
    ts_us = _ts_us(event.ts)
    if ts_us is None:
        return Rejection(index, "invalid_ts", "ts must be ISO 8601 with an offset, or epoch milliseconds.")
    if ts_us > latest_us:
        return Rejection(index, "ts_in_future", "ts is more than 5 minutes in the future.")
    if ts_us < earliest_us:
        return Rejection(index, "ts_too_old", "ts is more than 30 days old.")
    if event.sku is not None and not _printable(event.sku, MAX_SKU):
        return Rejection(index, "invalid_sku", f"sku must be 1-{MAX_SKU} printable characters.")
    raw = bytes(event.props)
    props_text = _EMPTY_PROPS
    props: dict | None = None
    if raw and raw != b"null":
        if raw[:1] != b"{":
            return Rejection(index, "invalid_props", "props must be a JSON object.")
        if len(raw) >= MAX_PROPS_BYTES:
            return Rejection(index, "props_too_large", f"props must be under {MAX_PROPS_BYTES} bytes serialized.")
        # jsonb refuses the NUL character; only text that escapes something can hold one.
        if b"\\u" in raw or event.kind == "purchase":
            props = _props_decoder.decode(raw)
            if b"\\u0000" in raw and _has_nul(props):
                return Rejection(index, "invalid_props", "props must not contain the NUL character.")
        props_text = raw
    amount_fen = None
    item_skus: tuple[str, ...] = ()
    if event.kind == "purchase":
        outcome = _purchase(props or {}, index)
        if isinstance(outcome, Rejection):
            return outcome
        amount_fen, item_skus = outcome
    return EventRow(index, event.event_id, event.kind, ts_us, event.sku, props_text, amount_fen, item_skus)


def parse(body: bytes, now: dt.datetime) -> ParsedBatch:
    decoded, total = decode(body)
    batch = ParsedBatch(total=total)
    now_us = (now - _EPOCH) // _US
    earliest, latest = now_us - MAX_AGE // _US, now_us + MAX_FUTURE // _US
    for index, event in enumerate(decoded):
        outcome = event if isinstance(event, Rejection) else check(event, index, earliest, latest)
        if isinstance(outcome, Rejection):
            batch.rejected.append(outcome)
        else:
            batch.rows.append(outcome)
    return batch
