"""What a coupon takes off a cart: one pure function, no database, no clock.

Rules (the same for the Mini Program preview, the order and the refund):

* A line is *eligible* when the coupon's scope is empty (everything) or names its item or its
  category, and neither its item nor its category is excluded.
* The threshold (满 X) counts eligible lines only.
* ``cash_off`` (满减): ``value`` fen off once the eligible subtotal reaches the threshold.
  ``instant_off`` (立减): ``value`` fen off, no threshold. ``percent_off`` (折扣): ``value`` percent
  off the eligible subtotal, rounded **down** to the fen. ``exchange`` (兑换): one unit of the
  exchange item free (the cheapest such line when the item appears on several).
* The cap (最高优惠) applies to every kind; the discount never exceeds the eligible subtotal, so no
  line ever goes below zero.
* The discount is spread over the eligible lines in proportion to their totals (for partial
  refunds): each line gets the floor of its share, and the fen left over go one by one to the
  lines with the largest remainders (earlier lines first on ties), never past a line's total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CASH_OFF = "cash_off"
PERCENT_OFF = "percent_off"
INSTANT_OFF = "instant_off"
EXCHANGE = "exchange"
KINDS = (CASH_OFF, PERCENT_OFF, INSTANT_OFF, EXCHANGE)

# Reasons a coupon does not apply; stable codes the API returns.
NO_ELIGIBLE_ITEMS = "no_eligible_items"
BELOW_THRESHOLD = "below_threshold"
EXCHANGE_ITEM_MISSING = "exchange_item_missing"
NOTHING_TO_DISCOUNT = "nothing_to_discount"


@dataclass(frozen=True)
class Line:
    item_id: int
    category_id: int | None
    qty: int
    unit_price_fen: int

    def __post_init__(self) -> None:
        if self.qty < 1:
            raise ValueError("qty must be at least 1")
        if self.unit_price_fen < 0:
            raise ValueError("unit_price_fen must not be negative")

    @property
    def total_fen(self) -> int:
        return self.qty * self.unit_price_fen


@dataclass(frozen=True)
class Terms:
    """The parts of a coupon template that price a cart."""

    kind: str
    value: int = 0
    threshold_fen: int = 0
    cap_fen: int | None = None
    item_ids: frozenset[int] = field(default_factory=frozenset)
    category_ids: frozenset[int] = field(default_factory=frozenset)
    excluded_item_ids: frozenset[int] = field(default_factory=frozenset)
    excluded_category_ids: frozenset[int] = field(default_factory=frozenset)
    exchange_item_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown coupon kind {self.kind!r}")
        if self.value < 0 or self.threshold_fen < 0 or (self.cap_fen is not None and self.cap_fen < 0):
            raise ValueError("value, threshold and cap must not be negative")
        if self.kind == PERCENT_OFF and not 0 < self.value < 100:
            raise ValueError("percent_off takes a value between 1 and 99")

    def is_eligible(self, line: Line) -> bool:
        if line.item_id in self.excluded_item_ids or line.category_id in self.excluded_category_ids:
            return False
        if not self.item_ids and not self.category_ids:
            return True
        return line.item_id in self.item_ids or line.category_id in self.category_ids


@dataclass(frozen=True)
class Quote:
    applies: bool
    discount_fen: int
    eligible_subtotal_fen: int
    reason: str = ""
    # Per input line, in input order: the part of the discount that line carries (0 if ineligible).
    allocations: tuple[int, ...] = ()


def quote(lines: Sequence[Line], terms: Terms) -> Quote:
    """Whether ``terms`` apply to ``lines`` and what they take off, in fen."""
    eligible = [terms.is_eligible(line) for line in lines]
    subtotal = sum(line.total_fen for line, ok in zip(lines, eligible, strict=True) if ok)
    zeros = tuple(0 for _ in lines)
    if not any(eligible):
        return Quote(False, 0, 0, NO_ELIGIBLE_ITEMS, zeros)
    if terms.kind != INSTANT_OFF and subtotal < terms.threshold_fen:
        return Quote(False, 0, subtotal, BELOW_THRESHOLD, zeros)

    if terms.kind in (CASH_OFF, INSTANT_OFF):
        raw = terms.value
    elif terms.kind == PERCENT_OFF:
        raw = subtotal * terms.value // 100
    else:
        prices = [line.unit_price_fen for line, ok in zip(lines, eligible, strict=True)
                  if ok and line.item_id == terms.exchange_item_id]
        if not prices:
            return Quote(False, 0, subtotal, EXCHANGE_ITEM_MISSING, zeros)
        raw = min(prices)

    discount = min(raw, subtotal)
    if terms.cap_fen is not None:
        discount = min(discount, terms.cap_fen)
    if discount <= 0:
        return Quote(False, 0, subtotal, NOTHING_TO_DISCOUNT, zeros)
    totals = [line.total_fen if ok else 0 for line, ok in zip(lines, eligible, strict=True)]
    return Quote(True, discount, subtotal, "", allocate(discount, totals))


def allocate(discount: int, totals: Sequence[int]) -> tuple[int, ...]:
    """Split ``discount`` over ``totals`` by largest remainder; no share exceeds its total."""
    whole = sum(totals)
    if discount > whole:
        raise ValueError("discount exceeds the lines it is spread over")
    if whole == 0:
        return tuple(0 for _ in totals)
    shares = [discount * t // whole for t in totals]
    remainders = [discount * t % whole for t in totals]
    left = discount - sum(shares)
    for index in sorted(range(len(totals)), key=lambda i: (-remainders[i], i)):
        if left == 0:
            break
        if shares[index] < totals[index]:
            shares[index] += 1
            left -= 1
    return tuple(shares)


def best_of(quotes: Iterable[tuple[object, Quote]]) -> tuple[object, Quote] | None:
    """The coupon saving most (for "use the best coupon" in the Mini Program)."""
    applicable = [pair for pair in quotes if pair[1].applies]
    return max(applicable, key=lambda pair: pair[1].discount_fen, default=None)
