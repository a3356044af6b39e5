"""Verified WeChat Pay notifications: record each one, then settle it, in one unit of work.

Recording and applying share a transaction, so a notification is either recorded together with
the transition it caused, or not at all (and the view answers 5xx so WeChat retries). The unique
(tenant, channel, notify_id) row is where duplicates meet: concurrent retries wait on the first
insert, then find it and answer as it was answered, without touching the order. What a payment
causes beyond the order follows through the fulfilment outbox (``payments.fulfilment``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    notification: PaymentNotification
    outcome: str
    reason: str
    duplicate: bool

    @property
    def flagged(self) -> bool:
        return self.outcome == Outcome.FLAGGED


def _record(channel: str, notify_id: str, *, event_type: str, raw_body: str, resource: dict[str, Any],
            out_trade_no: str = "", transaction_id: str = "", out_refund_no: str = "",
            ) -> tuple[PaymentNotification, bool]:
    """Insert the notification unless it is there; lock the row either way. ``(row, inserted)``.

    ``ON CONFLICT DO NOTHING`` makes a concurrent retry wait for the first insert's transaction,
    then skip; no savepoint needed. A committed row always carries its outcome, so a row still
    ``received`` under our lock is the one this transaction just inserted.
    """
    notify_id = notify_id[:128]
    PaymentNotification.objects.bulk_create([PaymentNotification(
        channel=channel, notify_id=notify_id, event_type=event_type[:32], raw_body=raw_body, resource=resource,
        out_trade_no=out_trade_no[:32], transaction_id=transaction_id[:32], out_refund_no=out_refund_no[:64],
    )], ignore_conflicts=True)
    row = PaymentNotification.objects.select_for_update().get(channel=channel, notify_id=notify_id)
    if row.outcome == Outcome.RECEIVED:
        return row, True
    actions.bump_attempts(row)
    return row, False


def _finish(notification: PaymentNotification, settlement: actions.Settlement) -> Handled:
    notification.outcome = settlement.outcome
    notification.flag_reason = settlement.reason if settlement.flagged else ""
    notification.flag_details = settlement.details
    notification.order = settlement.order
    notification.save(update_fields=["outcome", "flag_reason", "flag_details", "order", "last_received_at"])
    return Handled(notification, settlement.outcome, settlement.reason, duplicate=False)


def _settle_recorded(tenant: Tenant, notification: PaymentNotification, created: bool, settle) -> Handled:
    if not created:
        return Handled(notification, notification.outcome, notification.flag_reason, duplicate=True)
    return _finish(notification, settle())


def handle_v3(tenant: Tenant, creds: PayCredentials, verified: VerifiedNotification) -> Handled:
    """A verified, decrypted v3 notification (payment or refund) for ``tenant``'s account."""
    resource = verified.resource
    is_refund = verified.event_type.startswith("REFUND.")
    with tenant_context(tenant):
        notification, created = _record(
            Channel.V3, verified.id or _fallback_id(verified), event_type=verified.event_type,
            raw_body=verified.raw_body.decode("utf-8", "replace"), resource=resource,
            out_trade_no=str(resource.get("out_trade_no", "")),
            transaction_id=str(resource.get("transaction_id", "")),
            out_refund_no=str(resource.get("out_refund_no", "")) if is_refund else "",
        )
        if is_refund:
            return _settle_recorded(tenant, notification, created, lambda: actions.settle_refund(
                tenant, refund_from_v3(resource), creds=creds))
        if verified.event_type != "TRANSACTION.SUCCESS":
            return _finish(notification, actions.Settlement(Outcome.FLAGGED, "unexpected_event"))
        return _settle_recorded(tenant, notification, created, lambda: actions.settle_payment(
            tenant, payment_from_v3(resource), creds=creds, cause=OrderTransition.Cause.NOTIFY_V3))


def _fallback_id(verified: VerifiedNotification) -> str:
    # Every real notification has an id; without one, the content identifies the event.
    r = verified.resource
    return f"{verified.event_type}:{r.get('transaction_id', '')}:{r.get('out_refund_no', '')}"


def handle_v2_payment(tenant: Tenant, creds: PayCredentials, fields: dict[str, str], raw_body: str) -> Handled:
    """A v2 pay notify whose signature has been checked."""
    result = payment_from_v2(fields)
    with tenant_context(tenant):
        notification, created = _record(
            Channel.V2, f"pay:{result.transaction_id or result.out_trade_no}",
            event_type=f"PAY.{fields.get('result_code', '')}", raw_body=raw_body, resource=fields,
            out_trade_no=result.out_trade_no, transaction_id=result.transaction_id,
        )
        return _settle_recorded(tenant, notification, created, lambda: actions.settle_payment(
            tenant, result, creds=creds, cause=OrderTransition.Cause.NOTIFY_V2))


def handle_v2_refund(tenant: Tenant, creds: PayCredentials, outer: dict[str, str], req_info: dict[str, str],
                     raw_body: str) -> Handled:
    """A v2 refund notify whose ``req_info`` decrypted with the merchant's key (its authentication)."""
    result = refund_from_v2(outer, req_info)
    with tenant_context(tenant):
        notification, created = _record(
            Channel.V2, f"refund:{result.refund_id or result.out_refund_no}:{result.status}",
            event_type=f"REFUND.{result.status}", raw_body=raw_body, resource=req_info,
            out_trade_no=result.out_trade_no, transaction_id=req_info.get("transaction_id", ""),
            out_refund_no=result.out_refund_no,
        )
        return _settle_recorded(tenant, notification, created, lambda: actions.settle_refund(
            tenant, result, creds=creds))
