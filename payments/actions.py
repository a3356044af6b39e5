"""State changes of orders, payments and refunds: called by the API, notify views, console and tasks.

Each action takes the tenant first and runs in its context. WeChat HTTP calls happen between
database units of work, never inside one: a slow WeChat must not hold row locks or a connection
in a transaction (DESIGN.md, "Tenancy").
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns import actions as coupon_actions
from campaigns import pricing
from campaigns import queries as coupon_queries
from campaigns.exceptions import CouponError
from campaigns.exceptions import NotFound as CouponNotFound
from campaigns.models import Coupon
from catalog.models import Item
from payments import bill, effects, fulfilment, gateway, states
from payments.exceptions import PaymentsError
from payments.models import BillCheck, Order, OrderLine, OrderTransition, PaymentNotification, Refund
from payments.pay_results import BEIJING, PaymentResult, RefundResult, payment_from_v3, refund_from_v3
from payments.queries import beijing_day_bounds, get_member_order, get_order_by_pk, reserved_refund_fen
from profiles.models import Member
from tenants.actions import audit
from tenants.context import current_tenant, tenant_context
from tenants.credentials import PayCredentials
from tenants.models import Tenant
from wechat.errors import WeChatPayError, WeChatUnavailable

logger = logging.getLogger("jingzhun.payments")

ORDER_TTL = timedelta(minutes=30)
# WeChat keeps a prepay_id for about two hours; stop reusing it a little before.
PREPAY_TTL = timedelta(minutes=110)
MAX_LINES = 50
MAX_QTY = 999

Outcome = PaymentNotification.Outcome
Cause = OrderTransition.Cause


# --- orders ------------------------------------------------------------------------------------


def new_out_trade_no() -> str:
    # 24 chars of [0-9A-Z]: inside WeChat's 6–32 and readable on a receipt.
    stamp = timezone.now().astimezone(BEIJING).strftime("%Y%m%d%H%M%S")
    return "JZ" + stamp + "".join(secrets.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(8))


def _normalise_lines(lines: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    if not isinstance(lines, list | tuple) or not 1 <= len(lines) <= MAX_LINES:
        raise PaymentsError("invalid_lines", max_lines=MAX_LINES)
    merged: dict[str, int] = {}
    for line in lines:
        sku = line.get("sku") if isinstance(line, dict) else None
        qty = line.get("qty") if isinstance(line, dict) else None
        if not isinstance(sku, str) or not sku or not isinstance(qty, int) or isinstance(qty, bool) \
                or not 1 <= qty <= MAX_QTY:
            raise PaymentsError("invalid_lines")
        merged[sku] = merged.get(sku, 0) + qty
    if any(qty > MAX_QTY for qty in merged.values()):
        raise PaymentsError("invalid_lines")
    return sorted(merged.items())


def _same_request(order: Order, wanted: list[tuple[str, int]]) -> bool:
    have = sorted((line.sku, line.qty) for line in order.lines.all())
    return have == wanted


@dataclass
class PricedLine:
    item: Item
    qty: int
    discount_fen: int = 0

    @property
    def amount_fen(self) -> int:
        return self.item.price_fen * self.qty


def create_order(tenant: Tenant, member: Member, *, client_order_id: str, lines: Sequence[dict[str, Any]],
                 coupon: str | None = None) -> tuple[Order, bool]:
    """The member's order for ``client_order_id``: new, or the one made before with the same id.

    Prices come from the catalogue. Returns ``(order, created)``.
    """
    client_order_id = (client_order_id or "").strip() if isinstance(client_order_id, str) else ""
    if not 1 <= len(client_order_id) <= 64:
        raise PaymentsError("invalid_lines", "client_order_id 需为 1–64 个字符。")
    wanted = _normalise_lines(lines)
    with tenant_context(tenant):
        existing = Order.objects.filter(member=member, client_order_id=client_order_id).first()
        if existing is not None:
            return _replay(existing, wanted, coupon), False
        items = {item.sku: item for item in Item.objects.filter(sku__in=[sku for sku, _ in wanted], active=True)}
        missing = [sku for sku, _ in wanted if sku not in items]
        if missing:
            raise PaymentsError("unknown_sku", skus=missing)
        priced = [PricedLine(items[sku], qty) for sku, qty in wanted]
        subtotal = sum(line.amount_fen for line in priced)
        held = _coupon_for(member, coupon, priced) if coupon not in (None, "") else None
        discount = sum(line.discount_fen for line in priced)
        names = [line.item.name for line in priced]
        description = names[0] if len(names) == 1 else f"{names[0]} 等{len(names)}件"
        now = timezone.now()
        order = Order(
            out_trade_no=new_out_trade_no(), client_order_id=client_order_id, member=member,
            description=description[:127], subtotal_fen=subtotal, discount_fen=discount,
            payable_fen=subtotal - discount, expires_at=now + ORDER_TTL,
        )
        try:
            with transaction.atomic():
                order.save()
        except IntegrityError:
            # The same client_order_id raced in from a double tap: the other request's order wins.
            existing = Order.objects.filter(member=member, client_order_id=client_order_id).first()
            if existing is None:
                raise
            return _replay(existing, wanted, coupon), False
        if held is not None:
            try:
                coupon_actions.lock_coupon(tenant, held, order.out_trade_no, discount_fen=discount)
            except CouponError as exc:
                raise PaymentsError("coupon_not_applicable", reason=exc.code) from exc
            order.coupon = held
            order.save(update_fields=["coupon"])
        OrderLine.objects.bulk_create([
            OrderLine(order=order, item=line.item, sku=line.item.sku, name=line.item.name,
                      category_id=line.item.category_id, unit_price_fen=line.item.price_fen, qty=line.qty,
                      amount_fen=line.amount_fen, discount_fen=line.discount_fen)
            for line in priced
        ])
        OrderTransition.objects.create(order=order, from_state="", to_state=Order.State.CREATED, cause=Cause.API,
                                       details={"client_order_id": client_order_id})
        if order.payable_fen == 0:
            # Fully covered by a coupon (an exchange coupon, say): nothing for WeChat to collect.
            states.mark_paid(order, transaction_id="", paid_at=order.created_at, cause=Cause.API,
                             details={"reason": "nothing_to_pay"})
            fulfilment.schedule(order)
    return order, True


def _coupon_for(member: Member, coupon: str | int, priced: list[PricedLine]) -> Coupon:
    """The member's coupon (by id or code) if it applies to these lines; spreads its discount over them."""
    try:
        if isinstance(coupon, int) and not isinstance(coupon, bool):
            held = coupon_queries.get_coupon(coupon, member=member)
        elif isinstance(coupon, str):
            held = coupon_queries.get_coupon_by_code(coupon, member=member)
        else:
            raise PaymentsError("coupon_not_applicable", reason="not_found")
    except CouponNotFound:
        raise PaymentsError("coupon_not_applicable", reason="not_found") from None
    lines = [pricing.Line(p.item.pk, p.item.category_id, p.qty, p.item.price_fen) for p in priced]
    quote = coupon_queries.quote_coupon(held, lines)
    if not quote.applies:
        raise PaymentsError("coupon_not_applicable", reason=quote.reason)
    for line, share in zip(priced, quote.allocations, strict=True):
        line.discount_fen = share
    return held


def _replay(existing: Order, wanted: list[tuple[str, int]], coupon: str | int | None) -> Order:
    if not _same_request(existing, wanted) or (coupon in (None, "")) != (existing.coupon_id is None):
        raise PaymentsError("idempotency_conflict", out_trade_no=existing.out_trade_no)
    return existing


# --- prepay ------------------------------------------------------------------------------------


def _payable_now(order: Order) -> None:
    if order.state in (Order.State.PAID, Order.State.PARTIALLY_REFUNDED, Order.State.REFUNDED):
        raise PaymentsError("order_paid")
    if order.state == Order.State.CLOSED:
        raise PaymentsError("order_closed")
    if order.expires_at <= timezone.now():
        raise PaymentsError("order_expired")


def prepare_payment(tenant: Tenant, member: Member, out_trade_no: str) -> dict[str, str]:
    """The ``wx.requestPayment`` parameters; reuses the order's prepay_id while it is valid."""
    creds = gateway.credentials(tenant)
    with tenant_context(tenant):
        order = get_member_order(member.pk, out_trade_no)
        _payable_now(order)
        if order.prepay_id and order.prepay_expires_at and order.prepay_expires_at > timezone.now():
            return gateway.PayV3Client(creds).pay_params(order.prepay_id)
    client = gateway.PayV3Client(creds)
    try:
        prepay_id = client.jsapi_prepay(
            out_trade_no=order.out_trade_no, description=order.description, total_fen=order.payable_fen,
            openid=member.openid, notify_url=gateway.notify_url_v3(creds), time_expire=order.expires_at,
        )
    except WeChatUnavailable as exc:
        logger.warning("prepay %s: WeChat Pay unavailable: %s", out_trade_no, exc)
        raise PaymentsError("wechat_unavailable") from exc
    except WeChatPayError as exc:
        if exc.code == "ORDERPAID":
            sync_payment(tenant, order.pk)
            raise PaymentsError("order_paid") from exc
        if exc.code == "ORDER_CLOSED":
            raise PaymentsError("order_closed") from exc
        logger.warning("prepay %s refused: %s %s", out_trade_no, exc.code, exc.message)
        raise PaymentsError("wechat_pay_refused", wechat_code=exc.code, wechat_message=exc.message) from exc
    with tenant_context(tenant):
        order = get_order_by_pk(order.pk, for_update=True)
        _payable_now(order)
        expires = min(timezone.now() + PREPAY_TTL, order.expires_at)
        if order.state == Order.State.CREATED:
            states.start_paying(order, prepay_id=prepay_id, prepay_expires_at=expires)
        elif order.prepay_id != prepay_id:
            order.prepay_id, order.prepay_expires_at = prepay_id, expires
            order.save(update_fields=["prepay_id", "prepay_expires_at", "updated_at"])
    return client.pay_params(prepay_id)


# --- what WeChat reports -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    outcome: str
    reason: str = ""
    order: Order | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.outcome == Outcome.FLAGGED


def _flag(order: Order | None, reason: str, **details: Any) -> Settlement:
    if order is not None and not order.needs_attention:
        order.needs_attention = True
        order.save(update_fields=["needs_attention", "updated_at"])
    logger.warning("payment not applied (%s): order %s %s", reason, getattr(order, "out_trade_no", "-"), details)
    return Settlement(Outcome.FLAGGED, reason, order, details)


def unit_of_work(tenant: Tenant):
    """The tenant's context; inside it already (the notify path), the enclosing transaction itself.

    Re-entering ``tenant_context`` costs two ``set_config`` round trips and a savepoint; on the
    notify path everything commits or rolls back together anyway.
    """
    active = current_tenant()
    if active is not None and active.pk == tenant.pk:
        return transaction.atomic(savepoint=False)
    return tenant_context(tenant)


def settle_payment(tenant: Tenant, result: PaymentResult, *, creds: PayCredentials, cause: str) -> Settlement:
    """Apply a reported payment exactly once, after every business check (WECHAT.md §1.4 step 7).

    Anything that does not fit is returned flagged and changes nothing but the attention flag.
    """
    with unit_of_work(tenant):
        if result.mchid != creds.mchid:
            return _flag(None, "mchid_mismatch", got=result.mchid)
        if creds.appid and result.appid != creds.appid:
            return _flag(None, "appid_mismatch", got=result.appid)
        order = Order.objects.select_for_update().filter(out_trade_no=result.out_trade_no).first()
        if order is None:
            return _flag(None, "unknown_order", out_trade_no=result.out_trade_no)
        if result.trade_state != "SUCCESS":
            return _flag(order, "not_success", trade_state=result.trade_state)
        if result.currency != "CNY":
            return _flag(order, "currency_mismatch", got=result.currency)
        if result.total_fen != order.payable_fen:
            return _flag(order, "amount_mismatch", got=result.total_fen, expected=order.payable_fen)
        if not result.transaction_id:
            return _flag(order, "no_transaction_id")
        if order.state in (Order.State.PAID, Order.State.PARTIALLY_REFUNDED, Order.State.REFUNDED):
            if order.transaction_id == result.transaction_id:
                return Settlement(Outcome.NO_CHANGE, "already_paid", order)
            # A second, different payment for one order: money to give back by hand.
            return _flag(order, "paid_twice", transaction_id=result.transaction_id)
        if order.state == Order.State.CLOSED:
            return _flag(order, "order_closed", transaction_id=result.transaction_id)
        states.mark_paid(order, transaction_id=result.transaction_id,
                         paid_at=result.success_time or timezone.now(), cause=cause)
        fulfilment.schedule(order)
        return Settlement(Outcome.APPLIED, "", order)


def settle_refund(tenant: Tenant, result: RefundResult, *, creds: PayCredentials) -> Settlement:
    """Complete (or close) a refund WeChat reports on, once."""
    with unit_of_work(tenant):
        if result.mchid != creds.mchid:
            return _flag(None, "mchid_mismatch", got=result.mchid)
        refund = Refund.objects.select_for_update().filter(out_refund_no=result.out_refund_no).first()
        if refund is None:
            return _flag(None, "unknown_refund", out_refund_no=result.out_refund_no)
        order = get_order_by_pk(refund.order_id, for_update=True)
        if order.out_trade_no != result.out_trade_no:
            return _flag(order, "refund_order_mismatch", got=result.out_trade_no)
        if result.refund_fen is not None and result.refund_fen != refund.amount_fen:
            return _flag(order, "refund_amount_mismatch", got=result.refund_fen, expected=refund.amount_fen)
        if result.refund_id and not refund.refund_id:
            refund.refund_id = result.refund_id
        if refund.state in (Refund.State.SUCCESS, Refund.State.CLOSED):
            if refund.state == _REFUND_STATES.get(result.status):
                return Settlement(Outcome.NO_CHANGE, "already_final", order)
            return _flag(order, "refund_state_conflict", have=refund.state, got=result.status)
        if result.status == "SUCCESS":
            refund.state = Refund.State.SUCCESS
            refund.succeeded_at = result.success_time or timezone.now()
            refund.save(update_fields=["state", "refund_id", "succeeded_at", "updated_at"])
            moved = states.refund(order, amount_fen=refund.amount_fen, out_refund_no=refund.out_refund_no,
                                  actor=refund.requested_by)
            effects.on_refunded(order, refund.amount_fen, refund.out_refund_no)
            if order.state == Order.State.REFUNDED and order.coupon_id is not None:
                _return_coupon(tenant, order, moved)
            return Settlement(Outcome.APPLIED, "", order)
        if result.status == "CLOSED":
            refund.state = Refund.State.CLOSED
            refund.save(update_fields=["state", "refund_id", "updated_at"])
            return _flag(order, "refund_closed", out_refund_no=refund.out_refund_no)
        if result.status == "ABNORMAL":
            refund.state = Refund.State.ABNORMAL
            refund.save(update_fields=["state", "refund_id", "updated_at"])
            return _flag(order, "refund_abnormal", out_refund_no=refund.out_refund_no)
        if result.status == "PROCESSING" and refund.state == Refund.State.REQUESTED:
            refund.state = Refund.State.PROCESSING
            refund.save(update_fields=["state", "refund_id", "updated_at"])
            return Settlement(Outcome.APPLIED, "", order)
        return Settlement(Outcome.NO_CHANGE, "no_change", order)


_REFUND_STATES = {"SUCCESS": Refund.State.SUCCESS, "CLOSED": Refund.State.CLOSED}


def _return_coupon(tenant: Tenant, order: Order, moved: OrderTransition) -> None:
    """A fully refunded order's coupon goes back by the tenant's policy; the refund transition says
    what became of it (returned, or kept as used and why), where the order page shows it.

    Only the transition to refunded gets here, once per order, inside the refund's unit of work.
    """
    returned = coupon_actions.return_coupon_for_refund(tenant, order.coupon_id, order.out_trade_no)
    moved.details = {**moved.details, "coupon_return": returned.as_details()}
    moved.save(update_fields=["details"])


# --- closing and recovering --------------------------------------------------------------------


def sync_payment(tenant: Tenant, order_pk: int) -> str:
    """Ask WeChat where an unpaid order stands and act on it; for a missed notify. Returns trade_state."""
    with tenant_context(tenant):
        order = get_order_by_pk(order_pk)
    if order.state not in (Order.State.CREATED, Order.State.PAYING):
        return ""
    creds = gateway.credentials(tenant)
    try:
        data = gateway.PayV3Client(creds).query_by_out_trade_no(order.out_trade_no)
    except WeChatPayError as exc:
        if exc.code == "ORDER_NOT_EXIST":
            return "NOTEXIST"
        raise
    result = payment_from_v3(data)
    if result.trade_state == "SUCCESS":
        settle_payment(tenant, result, creds=creds, cause=Cause.QUERY)
    return result.trade_state


def close_order(tenant: Tenant, order_pk: int, *, cause: str = Cause.EXPIRY, actor=None) -> Order:
    """Close an unpaid order at WeChat (so it cannot be paid any more), then here, releasing its coupon.

    If WeChat says it was paid in the meantime, the payment is applied instead.
    """
    with tenant_context(tenant):
        order = get_order_by_pk(order_pk)
    if order.state not in (Order.State.CREATED, Order.State.PAYING):
        return order
    if order.prepay_id:
        creds = gateway.credentials(tenant)
        trade_state = sync_payment(tenant, order.pk)
        if trade_state in ("SUCCESS", "REFUND"):
            with tenant_context(tenant):
                return get_order_by_pk(order.pk)
        if trade_state not in ("CLOSED", "NOTEXIST"):
            try:
                gateway.PayV3Client(creds).close(order.out_trade_no)
            except WeChatPayError as exc:
                if exc.code == "ORDERPAID":
                    sync_payment(tenant, order.pk)
                    with tenant_context(tenant):
                        return get_order_by_pk(order.pk)
                if exc.code != "ORDER_NOT_EXIST":
                    raise
    with tenant_context(tenant):
        order = get_order_by_pk(order.pk, for_update=True)
        if order.state in (Order.State.CREATED, Order.State.PAYING):
            states.close(order, cause=cause, actor=actor)
            effects.on_closed(order)
            if actor is not None:
                audit(tenant, "order.closed", actor=actor, target=order.out_trade_no)
    return order


# --- refunds -----------------------------------------------------------------------------------


def new_out_refund_no(order: Order) -> str:
    return "RF" + order.out_trade_no[2:] + secrets.token_hex(3).upper()


def request_refund(tenant: Tenant, order_pk: int, *, amount_fen: int, reason: str = "", actor=None) -> Refund:
    """Record a refund of part or all of a paid order; ``submit_refund`` then asks WeChat for it.

    Never more than was paid minus the refunds already requested (they reserve their amount until
    WeChat closes them). The caller runs ``submit_refund`` after this transaction commits.
    """
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise PaymentsError("invalid_amount")
    reason = (reason or "").strip()[:80]
    gateway.credentials(tenant)
    with tenant_context(tenant):
        order = get_order_by_pk(order_pk, for_update=True)
        if order.state not in (Order.State.PAID, Order.State.PARTIALLY_REFUNDED):
            raise PaymentsError("not_refundable")
        available = order.payable_fen - reserved_refund_fen(order)
        if amount_fen > available:
            raise PaymentsError("refund_exceeds_paid", available_fen=available)
        refund = Refund.objects.create(order=order, out_refund_no=new_out_refund_no(order), amount_fen=amount_fen,
                                       reason=reason, requested_by=actor)
        audit(tenant, "order.refund_requested", actor=actor, target=order.out_trade_no,
              out_refund_no=refund.out_refund_no, amount_fen=amount_fen, reason=reason)
    return refund


def submit_refund(tenant: Tenant, refund_pk: int) -> Refund:
    """Send a requested refund to WeChat (no transaction open meanwhile) and apply its answer."""
    creds = gateway.credentials(tenant)
    with tenant_context(tenant):
        refund = Refund.objects.select_related("order").get(pk=refund_pk)
    if refund.state != Refund.State.REQUESTED:
        return refund
    order = refund.order
    try:
        answer = gateway.PayV3Client(creds).refund(
            out_trade_no=order.out_trade_no, out_refund_no=refund.out_refund_no, refund_fen=refund.amount_fen,
            total_fen=order.payable_fen, reason=refund.reason or None, notify_url=gateway.notify_url_v3(creds),
        )
    except WeChatPayError as exc:
        with tenant_context(tenant):
            Refund.objects.filter(pk=refund.pk, state=Refund.State.REQUESTED).update(
                state=Refund.State.FAILED, error=f"{exc.code}: {exc.message}"[:200], updated_at=timezone.now())
            return Refund.objects.get(pk=refund.pk)
    except WeChatUnavailable:
        # Outcome unknown: the refund stays requested; reconciliation asks WeChat about it.
        logger.warning("refund %s: WeChat Pay unavailable; will be queried later", refund.out_refund_no)
        raise
    settle_refund(tenant, refund_from_v3({**answer, "mchid": creds.mchid}), creds=creds)
    with tenant_context(tenant):
        return Refund.objects.get(pk=refund.pk)


def sync_refund(tenant: Tenant, refund_pk: int) -> str:
    """Ask WeChat where a refund stands (a missed refund notify, or an unknown outcome)."""
    with tenant_context(tenant):
        refund = Refund.objects.get(pk=refund_pk)
    creds = gateway.credentials(tenant)
    try:
        answer = gateway.PayV3Client(creds).query_refund(refund.out_refund_no)
    except WeChatPayError as exc:
        if exc.code in ("RESOURCE_NOT_EXISTS", "NOT_FOUND") and refund.state == Refund.State.REQUESTED:
            # Never reached WeChat (the submit was lost): send it now; the same out_refund_no is idempotent.
            return submit_refund(tenant, refund.pk).state
        raise
    result = refund_from_v3({**answer, "mchid": creds.mchid})
    settle_refund(tenant, result, creds=creds)
    return result.status


def clear_attention_if_settled(order: Order | None) -> None:
    """Drop the order's attention flag once none of its notifications is flagged and unresolved."""
    if order is None or PaymentNotification.objects.filter(
        order_id=order.pk, outcome=Outcome.FLAGGED, resolved_at__isnull=True
    ).exists():
        return
    Order.objects.filter(pk=order.pk).update(needs_attention=False)


def resolve_notification(tenant: Tenant, notification_pk: int, *, actor) -> PaymentNotification:
    """Staff marks a flagged notification as handled (e.g. the money was refunded by hand)."""
    with tenant_context(tenant):
        notification = PaymentNotification.objects.select_for_update().get(pk=notification_pk)
        if notification.resolved_at is None:
            notification.resolved_at = timezone.now()
            notification.resolved_by = actor
            notification.save(update_fields=["resolved_at", "resolved_by"])
            if notification.order_id:
                clear_attention_if_settled(Order(pk=notification.order_id))
            audit(tenant, "order.notification_resolved", actor=actor, target=notification.out_trade_no,
                  notification=notification.notify_id, reason=notification.flag_reason)
    return notification



# --- the daily trade bill ----------------------------------------------------------------------


def check_trade_bill(tenant: Tenant, bill_date: date) -> BillCheck:
    """Download the day's trade bill and store how it differs from our paid orders of that day."""
    creds = gateway.credentials(tenant)
    client = gateway.PayV3Client(creds)
    error, rows = "", []
    try:
        answer = client.trade_bill(bill_date)
        raw = client.download_bill(str(answer.get("download_url", "")), expected_sha1=answer.get("hash_value"))
        rows = bill.parse_trade_bill(raw.decode("utf-8-sig"))
    except WeChatPayError as exc:
        error = f"{exc.code}: {exc.message}"[:200]
    except (ValueError, UnicodeDecodeError) as exc:
        error = f"unreadable bill: {exc}"[:200]
    start, end = beijing_day_bounds(bill_date)
    with tenant_context(tenant):
        ours = [bill.OurPayment(o.out_trade_no, o.transaction_id, o.payable_fen)
                for o in Order.objects.filter(paid_at__gte=start, paid_at__lt=end).only(
                    "out_trade_no", "transaction_id", "payable_fen")]
        found = [] if error else bill.differences(rows, ours)
        check, _ = BillCheck.objects.update_or_create(bill_date=bill_date, defaults={
            "wechat_count": sum(1 for r in rows if r.state == "SUCCESS"), "ours_count": len(ours),
            "differences": found, "error": error,
        })
    if found:
        logger.warning("trade bill %s for tenant %s: %d difference(s)", bill_date, tenant.pk, len(found))
    return check
