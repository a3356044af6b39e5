"""Verified WeChat Pay notifications: settle each one and record it, in one unit of work.

Recording and applying share a transaction, so a notification is either recorded together with
the transition it caused, or not at all (and the view answers 5xx so WeChat retries). Repeats meet
twice: at the order's row lock (the order has already moved, so nothing is applied again) and at
the unique (tenant, channel, notify_id) row (answered as the first delivery was). What a payment
causes beyond the order follows through the fulfilment outbox (``payments.fulfilment``).

On PostgreSQL the common case, a payment that fits its order (or repeats one that already paid
it), is settled and recorded by a single statement: with BEGIN, the tenant setting and COMMIT,
four round trips per notify. Everything else takes the general path: ``actions.settle_payment`` or
``settle_refund``, then the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection
from django.utils import timezone

from payments import actions, fulfilment
from payments.models import Order, OrderTransition, PaymentNotification
from payments.pay_results import (
    PaymentResult,
    payment_from_v2,
    payment_from_v3,
    refund_from_v2,
    refund_from_v3,
)
from tenants.context import tenant_context
from tenants.credentials import PayCredentials
from tenants.models import Tenant
from tenants.prepared import execute_alone, prepared_cursor
from wechat.notify import VerifiedNotification

Outcome = PaymentNotification.Outcome
Channel = PaymentNotification.Channel


@dataclass(frozen=True)
class Handled:
    notification_id: int
    outcome: str
    reason: str
    duplicate: bool

    @property
    def flagged(self) -> bool:
        return self.outcome == Outcome.FLAGGED


_COLUMNS = ("tenant_id", "channel", "notify_id", "event_type", "out_trade_no", "transaction_id", "out_refund_no",
            "order_id", "raw_body", "resource", "outcome", "flag_reason", "flag_details", "attempts", "received_at",
            "last_received_at")
_FOREIGN_KEYS = {"tenant_id": "tenant", "order_id": "order"}


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _literal(choice: str) -> str:
    """One of the models' own choice values as an SQL literal (fewer parameters to bind per notify)."""
    if not choice.replace("_", "").isalnum():
        raise ValueError(choice)
    return f"'{choice}'"


@cache
def _fields() -> dict[str, Any]:
    meta = PaymentNotification._meta
    return {c: meta.get_field(_FOREIGN_KEYS.get(c, c)) for c in _COLUMNS}


def _params(values: dict[str, Any], columns: tuple[str, ...]) -> list[Any]:
    fields = _fields()
    return [fields[c].get_db_prep_save(values[c], connection) for c in columns]


@cache
def _upsert_clause() -> str:
    """ON CONFLICT for a repeat: count it; a repeat that now applies replaces a flagged outcome.

    It did not fit before and does now (e.g. the merchant's Pay settings were being changed), so
    this delivery is the one that applied it and the record says so. A concurrent repeat waits for
    the first delivery's transaction, then takes this branch: one statement, no savepoint.
    """
    table = _quoted(PaymentNotification._meta.db_table)

    def kept_unless_applied(column: str) -> str:
        column = _quoted(column)
        return (f"{column} = CASE WHEN EXCLUDED.{_quoted('outcome')} = {_literal(Outcome.APPLIED)} "
                f"THEN EXCLUDED.{column} ELSE {table}.{column} END")

    updates = [f"{_quoted('attempts')} = {table}.{_quoted('attempts')} + 1",
               f"{_quoted('last_received_at')} = EXCLUDED.{_quoted('last_received_at')}",
               *(kept_unless_applied(c) for c in ("outcome", "flag_reason", "flag_details", "order_id"))]
    conflict = ", ".join(_quoted(c) for c in ("tenant_id", "channel", "notify_id"))
    returning = ", ".join(_quoted(c) for c in ("id", "outcome", "flag_reason", "attempts"))
    return f"ON CONFLICT ({conflict}) DO UPDATE SET {', '.join(updates)} RETURNING {returning}"


@cache
def _record_sql() -> str:
    # Identifiers are this module's constants; every value is a parameter.
    return (
        f"INSERT INTO {_quoted(PaymentNotification._meta.db_table)} "  # noqa: S608
        f"({', '.join(_quoted(c) for c in _COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
        f"{_upsert_clause()}"
    )


def _insert(sql: str, params: list[Any] | dict[str, Any]) -> tuple | None:
    """Run the statement that records a notification (and, on the fast path, applies it)."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _record(values: dict[str, Any]) -> tuple[int, str, str, int]:
    """INSERT … ON CONFLICT DO UPDATE … RETURNING: (id, outcome, flag_reason, attempts) of the row."""
    return _insert(_record_sql(), _params(values, _COLUMNS))


def _values(tenant: Tenant, channel: str, notify_id: str, *, event_type: str, raw_body: str,
            resource: dict[str, Any], out_trade_no: str, transaction_id: str, out_refund_no: str) -> dict[str, Any]:
    now = timezone.now()
    return {
        "tenant_id": tenant.pk, "channel": channel, "notify_id": notify_id[:128], "event_type": event_type[:32],
        "out_trade_no": out_trade_no[:32], "transaction_id": transaction_id[:32],
        "out_refund_no": out_refund_no[:64], "order_id": None, "raw_body": raw_body, "resource": resource,
        "outcome": Outcome.RECEIVED, "flag_reason": "", "flag_details": {}, "attempts": 1,
        "received_at": now, "last_received_at": now,
    }


def _handled(order_id: int | None, settled_outcome: str, row: tuple[int, str, str, int]) -> Handled:
    pk, outcome, flag_reason, attempts = row
    if attempts == 1:
        return Handled(pk, outcome, flag_reason, duplicate=False)
    if settled_outcome == Outcome.APPLIED:
        actions.clear_attention_if_settled(Order(pk=order_id) if order_id else None)
    return Handled(pk, outcome, flag_reason, duplicate=True)


def _settle_and_record(settle, values: dict[str, Any]) -> Handled:
    """Settle, then record the notification with what came of it, in the caller's transaction.

    A repeat delivery settles to "no change" (the order is locked and already moved), then meets
    the first delivery's row and is answered with that row's outcome.
    """
    settlement = settle()
    order_id = settlement.order.pk if settlement.order else None
    row = _record({**values, "order_id": order_id, "outcome": settlement.outcome,
                   "flag_reason": settlement.reason if settlement.flagged else "",
                   "flag_details": settlement.details})
    return _handled(order_id, settlement.outcome, row)


# A payment that fits its order, settled and recorded in one statement: lock the order, move it to
# paid with its transition when it is still payable, and record the notification as applied (or as
# "no change" when this very payment already paid it). Anything else (unknown or closed order, an
# amount that does not match, a second payment) returns no row and writes nothing; the general path
# then runs every check on the order this statement has already locked, and flags it. A repeat
# delivery waits at the order's lock, then sees the order as the first one left it (READ COMMITTED
# re-reads a locked row), so it settles to "no change".
_PAY_AND_RECORD = """
WITH o AS (
    SELECT id, state, payable_fen, transaction_id FROM {order}
    WHERE tenant_id = %(tenant_id)s AND out_trade_no = %(out_trade_no)s
    FOR UPDATE
), paid AS (
    UPDATE {order} AS p
    SET state = {paid}, transaction_id = %(transaction_id)s, paid_at = %(paid_at)s, updated_at = %(now)s
    FROM o
    WHERE p.id = o.id AND o.state IN ({created}, {paying}) AND o.payable_fen = %(total_fen)s
    RETURNING p.id, o.state AS from_state
), moved AS (
    INSERT INTO {transition} (tenant_id, order_id, from_state, to_state, cause, actor_id, details, created_at)
    SELECT %(tenant_id)s, id, from_state, {paid}, %(cause)s, NULL, %(details)s, %(now)s FROM paid
), settled AS (
    SELECT o.id, CASE WHEN paid.id IS NULL THEN {no_change} ELSE {applied} END AS outcome
    FROM o LEFT JOIN paid ON paid.id = o.id
    WHERE paid.id IS NOT NULL
       OR (o.state IN ({paid}, {partially_refunded}, {refunded})
           AND o.transaction_id = %(transaction_id)s AND o.payable_fen = %(total_fen)s)
), recorded AS (
    INSERT INTO {notification} ({columns})
    SELECT {values} FROM settled
    {upsert}
)
SELECT settled.id, settled.outcome, recorded.* FROM settled CROSS JOIN recorded
"""
# What the statement takes from ``_values``: all but what it works out itself.
_PAY_COLUMNS = tuple(c for c in _COLUMNS if c not in ("order_id", "outcome"))


@cache
def _pay_and_record_sql() -> str:
    values = {c: f"%(n_{c})s" for c in _PAY_COLUMNS} | {"order_id": "settled.id", "outcome": "settled.outcome"}
    states = {state: _literal(getattr(Order.State, state.upper()))
              for state in ("created", "paying", "paid", "partially_refunded", "refunded")}
    return _PAY_AND_RECORD.format(
        order=_quoted(Order._meta.db_table), transition=_quoted(OrderTransition._meta.db_table),
        notification=_quoted(PaymentNotification._meta.db_table), columns=", ".join(_quoted(c) for c in _COLUMNS),
        values=", ".join(values[c] for c in _COLUMNS), upsert=_upsert_clause(),
        applied=_literal(Outcome.APPLIED), no_change=_literal(Outcome.NO_CHANGE), **states,
    )


def _pay_and_record(result: PaymentResult, values: dict[str, Any], cause: str, *, alone: bool = False,
                    ) -> Handled | None:
    """The fast path of a fitting payment on PostgreSQL; None when it does not apply.

    ``alone``: outside any unit of work, as a transaction of its own in one round trip.
    """
    params = dict(zip((f"n_{c}" for c in _PAY_COLUMNS), _params(values, _PAY_COLUMNS), strict=True))
    details = OrderTransition._meta.get_field("details").get_db_prep_save(
        {"transaction_id": result.transaction_id}, connection)
    params.update(
        tenant_id=values["tenant_id"], out_trade_no=result.out_trade_no, transaction_id=result.transaction_id,
        total_fen=result.total_fen, paid_at=result.success_time or values["received_at"],
        now=values["received_at"], cause=cause, details=details,
    )
    if alone:
        row = execute_alone(values["tenant_id"], _pay_and_record_sql(), params)
    else:
        row = _insert(_pay_and_record_sql(), params)
    if row is None:
        return None
    order_id, settled_outcome, *recorded = row
    if settled_outcome == Outcome.APPLIED:
        fulfilment.schedule_for(values["tenant_id"], order_id, batched=True)
    return _handled(order_id, settled_outcome, tuple(recorded))


def _fits_without_the_order(result: PaymentResult, creds: PayCredentials) -> bool:
    """The checks of ``actions.settle_payment`` that need no database, all passed."""
    return (result.mchid == creds.mchid and (not creds.appid or result.appid == creds.appid)
            and result.trade_state == "SUCCESS" and result.currency == "CNY" and result.total_fen is not None
            and bool(result.transaction_id))


def _settle_payment(tenant: Tenant, creds: PayCredentials, result: PaymentResult, values: dict[str, Any],
                    cause: str, *, fast_path_tried: bool = False) -> Handled:
    if not fast_path_tried and connection.vendor == "postgresql" and _fits_without_the_order(result, creds):
        handled = _pay_and_record(result, values, cause)
        if handled is not None:
            return handled
    return _settle_and_record(
        lambda: actions.settle_payment(tenant, result, creds=creds, cause=cause), values)


def handle_v3(tenant: Tenant, creds: PayCredentials, verified: VerifiedNotification) -> Handled:
    """A verified, decrypted v3 notification (payment or refund) for ``tenant``'s account."""
    resource = verified.resource
    is_refund = verified.event_type.startswith("REFUND.")
    values = _values(
        tenant, Channel.V3, verified.id or _fallback_id(verified), event_type=verified.event_type,
        raw_body=verified.raw_body.decode("utf-8", "replace"), resource=resource,
        out_trade_no=str(resource.get("out_trade_no", "")), transaction_id=str(resource.get("transaction_id", "")),
        out_refund_no=str(resource.get("out_refund_no", "")) if is_refund else "",
    )
    payment = payment_from_v3(resource) if verified.event_type == "TRANSACTION.SUCCESS" else None
    # The common case (a payment that fits its order) as one round trip before any unit of work opens;
    # anything else goes the general way, which checks everything again under its own lock.
    tried = (payment is not None and connection.vendor == "postgresql" and not connection.in_atomic_block
             and _fits_without_the_order(payment, creds))
    if tried:
        handled = _pay_and_record(payment, values, OrderTransition.Cause.NOTIFY_V3, alone=True)
        if handled is not None:
            return handled
    with tenant_context(tenant):
        if is_refund:
            return _settle_and_record(
                lambda: actions.settle_refund(tenant, refund_from_v3(resource), creds=creds), values)
        if payment is not None:
            return _settle_payment(tenant, creds, payment, values, OrderTransition.Cause.NOTIFY_V3,
                                   fast_path_tried=tried)
        return _settle_and_record(lambda: actions.Settlement(Outcome.FLAGGED, "unexpected_event"), values)


def _fallback_id(verified: VerifiedNotification) -> str:
    # Every real notification has an id; without one, the content identifies the event.
    r = verified.resource
    return f"{verified.event_type}:{r.get('transaction_id', '')}:{r.get('out_refund_no', '')}"


def handle_v2_payment(tenant: Tenant, creds: PayCredentials, fields: dict[str, str], raw_body: str) -> Handled:
    """A v2 pay notify whose signature has been checked."""
    result = payment_from_v2(fields)
    values = _values(
        tenant, Channel.V2, f"pay:{result.transaction_id or result.out_trade_no}",
        event_type=f"PAY.{fields.get('result_code', '')}", raw_body=raw_body, resource=fields,
        out_trade_no=result.out_trade_no, transaction_id=result.transaction_id, out_refund_no="",
    )
    with tenant_context(tenant):
        return _settle_payment(tenant, creds, result, values, OrderTransition.Cause.NOTIFY_V2)


def handle_v2_refund(tenant: Tenant, creds: PayCredentials, outer: dict[str, str], req_info: dict[str, str],
                     raw_body: str) -> Handled:
    """A v2 refund notify whose ``req_info`` decrypted with the merchant's key (its authentication)."""
    result = refund_from_v2(outer, req_info)
    values = _values(
        tenant, Channel.V2, f"refund:{result.refund_id or result.out_refund_no}:{result.status}",
        event_type=f"REFUND.{result.status}", raw_body=raw_body, resource=req_info,
        out_trade_no=result.out_trade_no, transaction_id=req_info.get("transaction_id", ""),
        out_refund_no=result.out_refund_no,
    )
    with tenant_context(tenant):
        return _settle_and_record(lambda: actions.settle_refund(tenant, result, creds=creds), values)
