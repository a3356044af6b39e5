"""campaigns.pricing: examples for each kind, and properties that hold for any cart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns import pricing
from campaigns.pricing import Line, Terms, allocate, quote

COFFEE, TEA, CAKE = 1, 2, 3
DRINKS, FOOD = 10, 20


def _lines():
    return [Line(COFFEE, DRINKS, 2, 1800), Line(TEA, DRINKS, 1, 1500), Line(CAKE, FOOD, 1, 2500)]


def test_cash_off_counts_only_eligible_lines_toward_the_threshold():
    terms = Terms(pricing.CASH_OFF, value=1000, threshold_fen=5000, category_ids=frozenset({DRINKS}))
    q = quote(_lines(), terms)  # drinks: 3600 + 1500 = 5100 (cake 2500 does not count)
    assert (q.applies, q.discount_fen, q.eligible_subtotal_fen) == (True, 1000, 5100)
    assert q.allocations == (706, 294, 0)
    below = quote(_lines(), Terms(pricing.CASH_OFF, value=1000, threshold_fen=5101,
                                  category_ids=frozenset({DRINKS})))
    assert (below.applies, below.discount_fen, below.reason) == (False, 0, pricing.BELOW_THRESHOLD)


def test_percent_off_rounds_down_and_respects_the_cap():
    lines = [Line(COFFEE, DRINKS, 1, 999)]
    assert quote(lines, Terms(pricing.PERCENT_OFF, value=15)).discount_fen == 149  # 149.85 → 149
    assert quote(_lines(), Terms(pricing.PERCENT_OFF, value=50, cap_fen=2000)).discount_fen == 2000


def test_instant_off_never_exceeds_the_cart_and_ignores_a_threshold():
    lines = [Line(TEA, DRINKS, 1, 300)]
    q = quote(lines, Terms(pricing.INSTANT_OFF, value=500, threshold_fen=10_000))
    assert (q.applies, q.discount_fen, q.allocations) == (True, 300, (300,))


def test_exchange_frees_one_unit_of_the_cheapest_matching_line():
    lines = [Line(CAKE, FOOD, 3, 2500), Line(COFFEE, DRINKS, 1, 1800), Line(CAKE, FOOD, 1, 2200)]
    q = quote(lines, Terms(pricing.EXCHANGE, exchange_item_id=CAKE))
    assert (q.applies, q.discount_fen) == (True, 2200)
    missing = quote([Line(COFFEE, DRINKS, 1, 1800)], Terms(pricing.EXCHANGE, exchange_item_id=CAKE))
    assert (missing.applies, missing.reason) == (False, pricing.EXCHANGE_ITEM_MISSING)


def test_exclusions_beat_the_scope():
    terms = Terms(pricing.INSTANT_OFF, value=500, category_ids=frozenset({DRINKS}),
                  excluded_item_ids=frozenset({COFFEE, TEA}))
    q = quote(_lines(), terms)
    assert (q.applies, q.reason, q.discount_fen) == (False, pricing.NO_ELIGIBLE_ITEMS, 0)


def test_bad_terms_and_lines_are_refused():
    with pytest.raises(ValueError):
        Terms(pricing.PERCENT_OFF, value=100)
    with pytest.raises(ValueError):
        Terms("mystery")
    with pytest.raises(ValueError):
        Line(COFFEE, DRINKS, 0, 100)


def test_best_of_picks_the_biggest_saving():
    lines = _lines()
    pairs = [("a", quote(lines, Terms(pricing.INSTANT_OFF, value=300))),
             ("b", quote(lines, Terms(pricing.PERCENT_OFF, value=10))),  # 910
             ("c", quote(lines, Terms(pricing.CASH_OFF, value=5000, threshold_fen=99_999)))]
    assert pricing.best_of(pairs)[0] == "b"
    assert pricing.best_of([pairs[2]]) is None


# --- properties ----------------------------------------------------------------------------------

ids = st.integers(min_value=1, max_value=6)
lines_st = st.lists(
    st.builds(Line, item_id=ids, category_id=st.integers(min_value=10, max_value=13),
              qty=st.integers(min_value=1, max_value=20), unit_price_fen=st.integers(min_value=0, max_value=50_000)),
    min_size=1, max_size=8,
)
id_sets = st.frozensets(ids, max_size=3)
cat_sets = st.frozensets(st.integers(min_value=10, max_value=13), max_size=2)


@st.composite
def terms_st(draw, kind):
    value = draw(st.integers(min_value=1, max_value=99)) if kind == pricing.PERCENT_OFF else draw(
        st.integers(min_value=0, max_value=200_000))
    return Terms(
        kind, value=value,
        threshold_fen=draw(st.integers(min_value=0, max_value=300_000)),
        cap_fen=draw(st.none() | st.integers(min_value=0, max_value=100_000)),
        item_ids=draw(id_sets), category_ids=draw(cat_sets),
        excluded_item_ids=draw(id_sets), excluded_category_ids=draw(cat_sets),
        exchange_item_id=draw(st.none() | ids),
    )


any_terms = st.sampled_from(pricing.KINDS).flatmap(terms_st)


@settings(max_examples=400, deadline=None)
@given(lines=lines_st, terms=any_terms)
def test_discount_is_bounded_and_spread_without_negative_lines(lines, terms):
    q = quote(lines, terms)
    eligible = [terms.is_eligible(line) for line in lines]
    eligible_subtotal = sum(line.total_fen for line, ok in zip(lines, eligible, strict=True) if ok)
    assert q.eligible_subtotal_fen == eligible_subtotal
    assert 0 <= q.discount_fen <= eligible_subtotal
    if terms.cap_fen is not None:
        assert q.discount_fen <= terms.cap_fen
    assert len(q.allocations) == len(lines)
    assert sum(q.allocations) == q.discount_fen
    for line, ok, share in zip(lines, eligible, q.allocations, strict=True):
        assert 0 <= share <= (line.total_fen if ok else 0)
    assert q.applies == (q.discount_fen > 0)
    assert q.applies or q.reason


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, terms=any_terms)
def test_threshold_is_respected_and_excluded_lines_change_nothing(lines, terms):
    q = quote(lines, terms)
    if terms.kind != pricing.INSTANT_OFF and q.eligible_subtotal_fen < terms.threshold_fen:
        assert not q.applies and q.reason in (pricing.BELOW_THRESHOLD, pricing.NO_ELIGIBLE_ITEMS)
    # Adding an excluded line (by item) never changes the discount.
    if terms.excluded_item_ids:
        extra = Line(min(terms.excluded_item_ids), 10, 3, 9_999)
        assert quote([*lines, extra], terms).discount_fen == q.discount_fen


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, terms=st.sampled_from([pricing.CASH_OFF, pricing.INSTANT_OFF]).flatmap(terms_st))
def test_cash_kinds_take_exactly_their_value_when_the_cart_is_big_enough(lines, terms):
    q = quote(lines, terms)
    if q.applies and q.eligible_subtotal_fen >= terms.value and (terms.cap_fen is None or terms.cap_fen >= terms.value):
        assert q.discount_fen == terms.value


@settings(max_examples=300, deadline=None)
@given(lines=lines_st, terms=st.sampled_from([pricing.PERCENT_OFF]).flatmap(terms_st))
def test_percent_off_is_the_floor_of_the_share(lines, terms):
    q = quote(lines, terms)
    if q.applies:
        expected = q.eligible_subtotal_fen * terms.value // 100
        assert q.discount_fen == (expected if terms.cap_fen is None else min(expected, terms.cap_fen))


@given(discount=st.integers(min_value=0, max_value=10**6),
       totals=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=10))
def test_allocate_sums_exactly_and_never_exceeds_a_line(discount, totals):
    discount = min(discount, sum(totals))
    shares = allocate(discount, totals)
    assert sum(shares) == discount
    assert all(0 <= s <= t for s, t in zip(shares, totals, strict=True))
