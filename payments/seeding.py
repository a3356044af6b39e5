"""The paid orders behind ``seed_demo``'s purchases, so reports and the orders console see real orders.

Registered with ``profiles.seeding`` (which may not import this app) from ``PaymentsConfig.ready``.
For each chunk of new seeded members, every purchase record becomes one ``paid`` order in the same
unit of work: its lines at the record's prices (the catalogue's), a ``transaction_id``, ``paid_at``
at the purchase time and the transitions created → paying → paid with the cause ``seed``.

The order's effects are already in the data: the seeder wrote the purchase event and set points and
tier, so ``fulfilled_at`` is set and fulfilment never runs (it would add a second event and double
the points).

Deterministic: ``client_order_id`` is the purchase event id, and ``out_trade_no``,
``transaction_id`` and coupon codes are derived from it, so the same seed gives the same orders and
an order that exists (keyed by member and ``client_order_id``) is never written twice.

Coupons, where the plan says: on 会员日 some purchases of the ``bargain`` group use the tenant's
"会员日 满30减5" template (created, active, through the campaigns action if missing). The coupon is
issued that morning, valid for the template's days, locked when the order is made and used when it
is paid; the discount is priced by ``campaigns.pricing`` and spread over the lines. The generator's
amount is the basket at list price, so a coupon order has subtotal = that amount and payable =
amount − discount, and its purchase event is rewritten to agree with what was paid (``amount_fen``
= payable, plus ``discount_fen``, ``coupon_id`` and ``out_trade_no`` in its props, as a real
payment's event carries them); the items keep their list prices.

Rows go in bulk through the seeder's table writer (binary COPY via a staging table on PostgreSQL,
so Row-Level Security still checks every row; batched INSERTs elsewhere), which also keeps the
historical ``created_at`` times that ``bulk_create`` would overwrite with the time of the run.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import F
from django.utils.translation import gettext as _

from campaigns import actions as campaign_actions
from campaigns import pricing
from campaigns.actions.issuance import validity_for
from campaigns.models import CODE_ALPHABET, Channel, ClaimCounter, Coupon, CouponTemplate
from campaigns.queries import terms_of
from catalog.models import Item
from payments.models import Order, OrderLine, OrderTransition
from profiles.models import Event
from profiles.seeding import SHANGHAI, PurchaseRecord, SeededMember, _Table, register_seed_writer
from tenants.context import tenant_context
from tenants.models import Tenant

SEED_CAUSE = OrderTransition.Cause.SEED.value
COUPON_GROUP = "bargain"
COUPON_NAME = "会员日 满30减5"
COUPON_TERMS = {"kind": CouponTemplate.Kind.CASH_OFF, "value": 500, "threshold_fen": 3000}
# Of the bargain group's 会员日 purchases the coupon applies to, the share that used one.
COUPON_SHARE = 0.6
# The same windows create_order and prepare_payment use.
ORDER_TTL = timedelta(minutes=30)
PREPAY_TTL = timedelta(minutes=110)
_TO_CODE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CODE_ALPHABET)
_SYMBOLS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def _digest(event_id: str) -> bytes:
    return hashlib.blake2b(f"jingzhun-seed-order:{event_id}".encode(), digest_size=32).digest()


def out_trade_no_for(event_id: str, created_at: datetime) -> str:
    """Shaped like ``create_order``'s (JZ, Beijing time, 8 symbols), the symbols drawn from the event id."""
    tail = int.from_bytes(_digest(event_id)[:8], "big")
    symbols = ""
    for _n in range(8):
        tail, k = divmod(tail, len(_SYMBOLS))
        symbols += _SYMBOLS[k]
    return "JZ" + created_at.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S") + symbols


def transaction_id_for(event_id: str, paid_at: datetime) -> str:
    """28 digits like WeChat Pay's: 4200000, the Beijing date, 13 digits from the event id."""
    digits = int.from_bytes(_digest(event_id)[8:16], "big") % 10**13
    return f"4200000{paid_at.astimezone(SHANGHAI):%Y%m%d}{digits:013d}"


def coupon_code_for(event_id: str) -> str:
    """A code shaped like ``new_coupon_code()``'s (16 symbols), fixed by the event id."""
    return base64.b32encode(_digest(event_id)[16:26]).decode().translate(_TO_CODE)


def uses_coupon(seeded: SeededMember, purchase: PurchaseRecord) -> bool:
    """Whether the plan has this purchase use the 会员日 coupon (if the coupon applies to it)."""
    return seeded.group == COUPON_GROUP and purchase.promo and _digest(purchase.event_id)[26] < 256 * COUPON_SHARE


def seed_coupon_template(tenant: Tenant) -> CouponTemplate:
    """The tenant's 会员日 template: an existing one of that name as it is, else a new active one."""
    with tenant_context(tenant):
        template = CouponTemplate.objects.filter(name=COUPON_NAME).order_by("pk").first()
        if template is not None:
            return template
        return campaign_actions.create_coupon_template(
            tenant, activate=True, name=COUPON_NAME, description=_("每周三和每月 18 日会员日，满 30 元减 5 元。"),
            valid_days=1, per_member_limit=0, **COUPON_TERMS,
        )


@dataclass
class _Planned:
    """One order about to be written, with what its coupon (if any) takes off each line."""

    member_id: int
    purchase: PurchaseRecord
    created_at: datetime
    out_trade_no: str
    items: list[Item]
    discounts: tuple[int, ...]
    coupon_code: str = ""

    @property
    def subtotal_fen(self) -> int:
        return sum(line.qty * line.price_fen for line in self.purchase.lines)

    @property
    def discount_fen(self) -> int:
        return sum(self.discounts)

    @property
    def payable_fen(self) -> int:
        return self.subtotal_fen - self.discount_fen


class _Coupons:
    """The 会员日 template for this chunk, fetched or created only once a purchase wants it."""

    def __init__(self, tenant: Tenant):
        self.tenant = tenant
        self.template: CouponTemplate | None = None
        self.terms: pricing.Terms | None = None
        self.remaining: int | None = None
        self.per_member: Counter = Counter()

    def discounts(self, member_id: int, lines: list[pricing.Line]) -> tuple[int, ...] | None:
        if self.template is None:
            self.template = seed_coupon_template(self.tenant)
            self.terms = terms_of(self.template)
            self.remaining = self.template.remaining
        limit = self.template.per_member_limit
        if self.remaining == 0 or (limit and self.per_member[member_id] >= limit):
            return None
        quote = pricing.quote(lines, self.terms)
        if not quote.applies:
            return None
        self.per_member[member_id] += 1
        if self.remaining is not None:
            self.remaining -= 1
        return quote.allocations


def write_orders(tenant: Tenant, batch: list[SeededMember], ids: dict[str, int]) -> Mapping[str, int]:
    """The chunk's purchases as paid orders (see the module docstring); returns what was written."""
    wanted = [(ids[s.member.openid], s, p) for s in batch for p in s.purchases]
    if not wanted:
        return {}
    with tenant_context(tenant):
        have = set(Order.objects.filter(member_id__in={m for m, _, _ in wanted},
                                        client_order_id__in=[p.event_id for _, _, p in wanted])
                   .values_list("member_id", "client_order_id"))
        skus = {line.sku for _, _, p in wanted for line in p.lines}
        items = {item.sku: item for item in Item.objects.filter(sku__in=skus)}
        coupons = _Coupons(tenant)
        planned: list[_Planned] = []
        for member_id, seeded, purchase in wanted:
            if (member_id, purchase.event_id) in have:
                continue
            lines = [items[line.sku] for line in purchase.lines]
            # Ordered a little before paying: between 15 s and 2 min, fixed by the event id.
            created_at = purchase.ts - timedelta(seconds=15 + _digest(purchase.event_id)[27] % 105)
            order = _Planned(member_id, purchase, created_at, out_trade_no_for(purchase.event_id, created_at),
                             lines, tuple(0 for _ in lines))
            if uses_coupon(seeded, purchase):
                priced = [pricing.Line(item.pk, item.category_id, line.qty, line.price_fen)
                          for item, line in zip(lines, purchase.lines, strict=True)]
                shares = coupons.discounts(member_id, priced)
                if shares is not None:
                    order.discounts = shares
                    order.coupon_code = coupon_code_for(purchase.event_id)
            planned.append(order)
        if not planned:
            return {}
        coupon_ids = _write_coupons(tenant, coupons.template, [o for o in planned if o.coupon_code])
        order_ids = _write_orders(tenant, planned, coupon_ids)
        _write_lines_and_transitions(tenant, planned, order_ids)
        _rewrite_coupon_events(tenant, batch, [o for o in planned if o.coupon_code], coupon_ids)
    used = [o for o in planned if o.coupon_code]
    return {"orders": len(planned), "revenue_fen": sum(o.payable_fen for o in planned),
            "coupons_used": len(used), "discount_fen": sum(o.discount_fen for o in used)}


def _now() -> datetime:
    return datetime.now(UTC)


def _write_coupons(tenant: Tenant, template: CouponTemplate | None, orders: list[_Planned]) -> dict[str, int]:
    if not orders or template is None:
        return {}
    table = _Table(Coupon, ["tenant", "template", "member", "code", "state", "claimed_at", "valid_from",
                            "valid_until", "order_ref", "locked_at", "used_at", "discount_fen", "channel",
                            "idempotency_key"], _now())
    rows = []
    for o in orders:
        # Claimed when the member day opened in Shanghai, the day's coupon; valid as the template says.
        claimed_at = o.purchase.ts.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
        valid_from, valid_until = validity_for(template, claimed_at)
        rows.append((tenant.pk, template.pk, o.member_id, o.coupon_code, Coupon.State.USED.value, claimed_at,
                     valid_from, valid_until, o.out_trade_no, o.created_at, o.purchase.ts, o.discount_fen,
                     Channel.SELF_CLAIM.value, f"seed:{o.purchase.event_id}"[:100]))
    table.write(rows)
    CouponTemplate.objects.filter(pk=template.pk).update(issued=F("issued") + len(orders))
    # The per-member claim counts a later claim checks its limit against. These members are new.
    per_member = Counter(o.member_id for o in orders)
    ClaimCounter.objects.bulk_create([ClaimCounter(template_id=template.pk, member_id=m, count=n)
                                      for m, n in per_member.items()], ignore_conflicts=True)
    return dict(Coupon.objects.filter(code__in=[o.coupon_code for o in orders]).values_list("code", "id"))


def _description(items: list[Item]) -> str:
    names = [item.name for item in items]
    return (names[0] if len(names) == 1 else f"{names[0]} 等{len(names)}件")[:127]


def _write_orders(tenant: Tenant, planned: list[_Planned], coupon_ids: dict[str, int]) -> dict[str, int]:
    table = _Table(Order, ["tenant", "out_trade_no", "client_order_id", "member", "state", "description",
                           "subtotal_fen", "discount_fen", "payable_fen", "refunded_fen", "coupon", "prepay_id",
                           "prepay_expires_at", "transaction_id", "expires_at", "paid_at", "fulfilled_at",
                           "needs_attention", "created_at", "updated_at"], _now())
    rows = []
    for o in planned:
        p = o.purchase
        expires_at = o.created_at + ORDER_TTL
        prepay_id = "wx" + o.created_at.astimezone(SHANGHAI).strftime("%d%H%M%S") + _digest(p.event_id).hex()[:26]
        rows.append((tenant.pk, o.out_trade_no, p.event_id, o.member_id, Order.State.PAID.value,
                     _description(o.items), o.subtotal_fen, o.discount_fen, o.payable_fen, 0,
                     coupon_ids.get(o.coupon_code) if o.coupon_code else None, prepay_id,
                     min(o.created_at + PREPAY_TTL, expires_at), transaction_id_for(p.event_id, p.ts), expires_at,
                     p.ts, p.ts, False, o.created_at, p.ts))
    table.write(rows)
    return dict(Order.objects.filter(out_trade_no__in=[o.out_trade_no for o in planned])
                .values_list("out_trade_no", "id"))


def _write_lines_and_transitions(tenant: Tenant, planned: list[_Planned], order_ids: dict[str, int]) -> None:
    now = _now()
    lines = _Table(OrderLine, ["tenant", "order", "item", "sku", "name", "category_id", "unit_price_fen", "qty",
                               "amount_fen", "discount_fen"], now)
    transitions = _Table(OrderTransition, ["tenant", "order", "from_state", "to_state", "cause", "details",
                                           "created_at"], now)
    line_rows, transition_rows = [], []
    t, State = tenant.pk, Order.State
    for o in planned:
        order_id, p = order_ids[o.out_trade_no], o.purchase
        line_rows += [(t, order_id, item.pk, line.sku, item.name, item.category_id, line.price_fen, line.qty,
                       line.qty * line.price_fen, share)
                      for item, line, share in zip(o.items, p.lines, o.discounts, strict=True)]
        transition_rows += [
            (t, order_id, "", State.CREATED.value, SEED_CAUSE, {"client_order_id": p.event_id}, o.created_at),
            (t, order_id, State.CREATED.value, State.PAYING.value, SEED_CAUSE, {}, o.created_at + timedelta(seconds=2)),
            (t, order_id, State.PAYING.value, State.PAID.value, SEED_CAUSE,
             {"transaction_id": transaction_id_for(p.event_id, p.ts)}, p.ts),
        ]
    lines.write(line_rows)
    transitions.write(transition_rows)


def _rewrite_coupon_events(tenant: Tenant, batch: list[SeededMember], orders: list[_Planned],
                           coupon_ids: dict[str, int]) -> None:
    """A coupon order's purchase event says what was paid, as the event of a real payment does."""
    if not orders:
        return
    props = {e.event_id: e.props for s in batch for e in s.events if e.kind == "purchase"}
    props_field = Event._meta.get_field("props")
    rows = []
    for o in orders:
        event_id = o.purchase.event_id
        items = [{**item, "discount_fen": share} for item, share in zip(props[event_id]["items"], o.discounts,
                                                                        strict=True)]
        paid = {**props[event_id], "amount_fen": o.payable_fen, "items": items, "discount_fen": o.discount_fen,
                "coupon_id": coupon_ids[o.coupon_code], "out_trade_no": o.out_trade_no}
        rows.append((o.payable_fen, props_field.get_db_prep_save(paid, connection), tenant.pk, event_id))
    # One statement per row, pipelined by the driver: bulk_update's CASE over JSON spent more time
    # building SQL than the database spent running it.
    table = connection.ops.quote_name(Event._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET amount_fen = %s, props = %s "  # noqa: S608 - table name only
                           "WHERE tenant_id = %s AND event_id = %s", rows)


def describe(totals: Counter) -> str:
    return _("订单：写入已支付订单 %(orders)d 笔，实收 %(revenue)s；其中用券 %(coupons)d 张，优惠 %(discount)s。") % {
        "orders": totals["orders"], "revenue": _yuan(totals["revenue_fen"]), "coupons": totals["coupons_used"],
        "discount": _yuan(totals["discount_fen"]),
    }


def _yuan(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


def register() -> None:
    register_seed_writer(write_orders, describe=describe)

