"""Verified WeChat Pay notifications: settle each one and record it, in one unit of work.

Recording and applying share a transaction, so a notification is either recorded together with
the transition it caused, or not at all (and the view answers 5xx so WeChat retries). Repeats meet
twice: at the order's row lock (the order has already moved, so nothing is applied again) and at
the unique (tenant, channel, notify_id) row (answered as the first delivery was). What a payment
causes beyond the order follows through the fulfilment outbox (``payments.fulfilment``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from payments import actions
from payments.models import OrderTransition, PaymentNotification
from payments.pay_results import payment_from_v2, payment_from_v3, refund_from_v2, refund_from_v3
from tenants.context import tenant_context
from tenants.credentials import PayCredentials
from tenants.models import Tenant
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


_INSERT_COLUMNS = ("tenant_id", "channel", "notify_id", "event_type", "out_trade_no", "transaction_id",
                   "out_refund_no", "order_id", "raw_body", "resource", "outcome", "flag_reason", "flag_details",
                   "attempts", "received_at", "last_received_at")
_FOREIGN_KEYS = {"tenant_id": "tenant", "order_id": "order"}


def _insert(values: dict[str, Any]) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new row's id, or None if it was there.

    A concurrent delivery of the same notification waits here for the first one's transaction,
    then finds the conflict; one round trip, no savepoint.
    """
    meta = PaymentNotification._meta
    params = []
    for column in _INSERT_COLUMNS:
        field = meta.get_field(_FOREIGN_KEYS.get(column, column))
        params.append(field.get_db_prep_save(values[column], connection))
    quote = connection.ops.quote_name
    # Identifiers are this module's constants; every value is a parameter.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in _INSERT_COLUMNS)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(_INSERT_COLUMNS))}) "
        f"ON CONFLICT ({quote('tenant_id')}, {quote('channel')}, {quote('notify_id')}) DO NOTHING RETURNING {quote('id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _settle_and_record(tenant: Tenant, channel: str, notify_id: str, settle, *, event_type: str, raw_body: str,
                       resource: dict[str, Any], out_trade_no: str = "", transaction_id: str = "",
                       out_refund_no: str = "") -> Handled:
    """Settle, then record the notification with what came of it, in the caller's transaction.

    A repeat delivery settles to "no change" (the order is locked and already moved), then meets
    the first delivery's row and is answered with that row's outcome.
    """
    settlement = settle()
    now = timezone.now()
    notify_id = notify_id[:128]
    inserted = _insert({
        "tenant_id": tenant.pk, "channel": channel, "notify_id": notify_id, "event_type": event_type[:32],
        "out_trade_no": out_trade_no[:32], "transaction_id": transaction_id[:32],
        "out_refund_no": out_refund_no[:64], "order_id": settlement.order.pk if settlement.order else None,
        "raw_body": raw_body, "resource": resource, "outcome": settlement.outcome,
        "flag_reason": settlement.reason if settlement.flagged else "", "flag_details": settlement.details,
        "attempts": 1, "received_at": now, "last_received_at": now,
    })
    if inserted is not None:
        return Handled(inserted, settlement.outcome, settlement.reason if settlement.flagged else "",
                       duplicate=False)
    existing = PaymentNotification.objects.select_for_update().get(channel=channel, notify_id=notify_id)
    actions.bump_attempts(existing)
    if settlement.outcome == Outcome.APPLIED:
        # It did not fit before and does now (e.g. the merchant's Pay settings were being changed):
        # this retry is the one that applied it, so the record says so.
        PaymentNotification.objects.filter(pk=existing.pk).update(
            outcome=Outcome.APPLIED, flag_reason="", flag_details={}, order=settlement.order)
        actions.clear_attention_if_settled(settlement.order)
        return Handled(existing.pk, Outcome.APPLIED, "", duplicate=True)
    return Handled(existing.pk, existing.outcome, existing.flag_reason, duplicate=True)


def handle_v3(tenant: Tenant, creds: PayCredentials, verified: VerifiedNotification) -> Handled:
    """A verified, decrypted v3 notification (payment or refund) for ``tenant``'s account."""
    resource = verified.resource
    is_refund = verified.event_type.startswith("REFUND.")
    if is_refund:
        def settle():
            return actions.settle_refund(tenant, refund_from_v3(resource), creds=creds)
    elif verified.event_type == "TRANSACTION.SUCCESS":
        def settle():
            return actions.settle_payment(tenant, payment_from_v3(resource), creds=creds,
                                          cause=OrderTransition.Cause.NOTIFY_V3)
    else:
        def settle():
            return actions.Settlement(Outcome.FLAGGED, "unexpected_event")
    with tenant_context(tenant):
        return _settle_and_record(
            tenant, Channel.V3, verified.id or _fallback_id(verified), settle, event_type=verified.event_type,
            raw_body=verified.raw_body.decode("utf-8", "replace"), resource=resource,
            out_trade_no=str(resource.get("out_trade_no", "")),
            transaction_id=str(resource.get("transaction_id", "")),
            out_refund_no=str(resource.get("out_refund_no", "")) if is_refund else "",
        )


def _fallback_id(verified: VerifiedNotification) -> str:
    # Every real notification has an id; without one, the content identifies the event.
    r = verified.resource
    return f"{verified.event_type}:{r.get('transaction_id', '')}:{r.get('out_refund_no', '')}"


def handle_v2_payment(tenant: Tenant, creds: PayCredentials, fields: dict[str, str], raw_body: str) -> Handled:
    """A v2 pay notify whose signature has been checked."""
    result = payment_from_v2(fields)
    with tenant_context(tenant):
        return _settle_and_record(
            tenant, Channel.V2, f"pay:{result.transaction_id or result.out_trade_no}",
            lambda: actions.settle_payment(tenant, result, creds=creds, cause=OrderTransition.Cause.NOTIFY_V2),
            event_type=f"PAY.{fields.get('result_code', '')}", raw_body=raw_body, resource=fields,
            out_trade_no=result.out_trade_no, transaction_id=result.transaction_id,
        )


def handle_v2_refund(tenant: Tenant, creds: PayCredentials, outer: dict[str, str], req_info: dict[str, str],
                     raw_body: str) -> Handled:
    """A v2 refund notify whose ``req_info`` decrypted with the merchant's key (its authentication)."""
    result = refund_from_v2(outer, req_info)
    with tenant_context(tenant):
        return _settle_and_record(
            tenant, Channel.V2, f"refund:{result.refund_id or result.out_refund_no}:{result.status}",
            lambda: actions.settle_refund(tenant, result, creds=creds),
            event_type=f"REFUND.{result.status}", raw_body=raw_body, resource=req_info,
            out_trade_no=result.out_trade_no, transaction_id=req_info.get("transaction_id", ""),
            out_refund_no=result.out_refund_no,
        )
