"""Reading a tenant's behaviour into numpy arrays with a few GROUP BY queries.

Everything is aggregated in the database, one row per member (or per member and category, or per
purchase line), over the ``(tenant_id, member_id, ts)`` index; nothing loops over events in Python.
Times come back as epoch seconds (float), so numpy does the date arithmetic. The queries run inside
the tenant context (Row-Level Security on PostgreSQL) and name the tenant again so that the planner
uses the tenant-leading indexes.

The SQL is written once with a few dialect fragments (PostgreSQL for production, SQLite for the
zero-setup demo and the default test run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connection

from catalog.models import Category, Item
from profiles.models import Event, Member
from tenants.context import require_tenant

DAY = 86400.0
# Half-life of interest: what a member looked at 30 days ago counts half as much as today.
INTEREST_HALF_LIFE_DAYS = 30.0
# How much each kind of event says about interest in an item's category; a purchase line weighs most.
KIND_WEIGHTS = {"view": 1.0, "click": 2.0, "share": 2.0, "add_to_cart": 3.0}
PURCHASE_LINE_WEIGHT = 5.0
# Propensity is learnt on a time split: features as of ``as_of - HORIZON``, label = bought since.
HORIZON_DAYS = 30


def _epoch(expr: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM {expr})::float8"
    return f"((julianday({expr}) - 2440587.5) * 86400.0)"


def _json_text(column: str, key: str) -> str:
    if connection.vendor == "postgresql":
        return f"({column}->>'{key}')"
    return f"json_extract({column}, '$.{key}')"


def _fence() -> str:
    """Ends a subquery the planner must not fold into the outer query (SQLite wants a LIMIT first)."""
    return "OFFSET 0" if connection.vendor == "postgresql" else "LIMIT -1 OFFSET 0"


def _param(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@dataclass
class Activity:
    """Per member, as of one moment: purchases and engagement (arrays aligned with ``member_ids``)."""

    as_of: datetime
    frequency: np.ndarray  # purchases
    monetary: np.ndarray  # fen
    promo_purchases: np.ndarray  # on a member day, or with a coupon
    last_purchase: np.ndarray  # epoch seconds, NaN when none
    first_purchase: np.ndarray
    events: np.ndarray  # all kinds
    events_7d: np.ndarray
    events_30d: np.ndarray
    events_90d: np.ndarray
    carts_30d: np.ndarray
    last_event: np.ndarray  # NaN when none

    @property
    def as_of_epoch(self) -> float:
        return self.as_of.timestamp()


@dataclass
class Catalogue:
    item_ids: np.ndarray
    item_names: list[str]
    item_category: np.ndarray  # index into category_names
    item_active: np.ndarray
    item_price: np.ndarray
    category_ids: np.ndarray
    category_names: list[str]
    skus: dict[str, int] = field(default_factory=dict)  # sku → item id

    def item_index(self) -> dict[int, int]:
        return {int(pk): n for n, pk in enumerate(self.item_ids)}


@dataclass
class Lines:
    """Purchase lines (one row per item of a purchase event), sorted by member and time."""

    member: np.ndarray  # index into member_ids
    item: np.ndarray  # index into the catalogue
    ts: np.ndarray  # epoch seconds
    qty: np.ndarray


@dataclass
class Features:
    as_of: datetime
    member_ids: np.ndarray
    profiling: np.ndarray  # consent to profiling
    first_seen: np.ndarray  # epoch seconds
    now: Activity
    before: Activity  # as of ``as_of - HORIZON_DAYS``: the propensity model's training features
    catalogue: Catalogue
    interest: np.ndarray  # (members, categories) recency-weighted engagement, views to purchases
    interest_bought: np.ndarray  # the purchase part of it
    lines: Lines
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.member_ids)


def _activity_sql(cuts: list[datetime]) -> tuple[str, list]:
    """One scan of the events, one group per member, a block of columns per cut-off time.

    The inner query turns each row into plain numbers once (the fence keeps the planner from
    folding it into the outer one, which would repeat the epoch extraction in every CASE).
    """
    promo = f"({_json_text('props', 'promo')} IS NOT NULL OR {_json_text('props', 'coupon_id')} IS NOT NULL)"
    columns: list[str] = []
    for cut in cuts:
        c = cut.timestamp()
        within = f"t < {c!r}"
        purchase = f"p = 1 AND {within}"
        columns += [
            f"SUM(CASE WHEN {purchase} THEN 1 ELSE 0 END)",
            f"SUM(CASE WHEN {purchase} THEN a ELSE 0 END)",
            f"SUM(CASE WHEN {purchase} THEN pr ELSE 0 END)",
            f"MAX(CASE WHEN {purchase} THEN t END)",
            f"MIN(CASE WHEN {purchase} THEN t END)",
            f"SUM(CASE WHEN {within} THEN 1 ELSE 0 END)",
            *(f"SUM(CASE WHEN {within} AND t >= {c - d * DAY!r} THEN 1 ELSE 0 END)" for d in (7, 30, 90)),
            f"SUM(CASE WHEN ca = 1 AND {within} AND t >= {c - 30 * DAY!r} THEN 1 ELSE 0 END)",
            f"MAX(CASE WHEN {within} THEN t END)",
        ]
    # Cut-offs are inlined as float literals (our own numbers, not input): the CASEs compare epochs.
    sql = (f"SELECT member_id, {', '.join(columns)} FROM ("  # noqa: S608
           f"SELECT member_id, {_epoch('ts')} AS t, "
           f"CASE WHEN kind = 'purchase' THEN 1 ELSE 0 END AS p, "
           f"CASE WHEN kind = 'add_to_cart' THEN 1 ELSE 0 END AS ca, "
           f"CASE WHEN kind = 'purchase' THEN COALESCE(amount_fen, 0) ELSE 0 END AS a, "
           f"CASE WHEN kind = 'purchase' AND {promo} THEN 1 ELSE 0 END AS pr "
           f"FROM {_table(Event)} WHERE tenant_id = %s AND ts < %s {_fence()}) s GROUP BY member_id")
    params = [require_tenant().pk, _param(max(cuts))]
    return sql, params


ACTIVITY_COLUMNS = 11


def read_activity(index: dict[int, int], n: int, cuts: list[datetime]) -> list[Activity]:
    sql, params = _activity_sql(cuts)
    rows = _fetch(sql, params)
    if rows:
        data = np.array(rows, dtype=np.float64)
        data = data[np.isin(data[:, 0].astype(np.int64), np.fromiter(index, np.int64, len(index)))]
    else:
        data = np.zeros((0, 1 + ACTIVITY_COLUMNS * len(cuts)))
    at = np.fromiter((index[int(m)] for m in data[:, 0]), np.int64, len(data))
    result = []
    for k, cut in enumerate(cuts):
        block = data[:, 1 + k * ACTIVITY_COLUMNS: 1 + (k + 1) * ACTIVITY_COLUMNS]

        def column(j: int, dtype, fill, block=block):
            out = np.full(n, fill, dtype=dtype)
            out[at] = block[:, j]
            return out

        result.append(Activity(
            as_of=cut,
            frequency=column(0, np.int32, 0), monetary=column(1, np.int64, 0), promo_purchases=column(2, np.int32, 0),
            last_purchase=column(3, np.float64, np.nan), first_purchase=column(4, np.float64, np.nan),
            events=column(5, np.int32, 0), events_7d=column(6, np.int32, 0), events_30d=column(7, np.int32, 0),
            events_90d=column(8, np.int32, 0), carts_30d=column(9, np.int32, 0),
            last_event=column(10, np.float64, np.nan),
        ))
    return result


def read_catalogue() -> Catalogue:
    tenant_id = require_tenant().pk
    categories = sorted(Category.objects.filter(tenant_id=tenant_id).values_list("id", "name"))
    items = sorted(Item.objects.filter(tenant_id=tenant_id).values_list("id", "name", "category_id", "active",
                                                                        "price_fen", "sku"))
    category_at = {pk: n for n, (pk, _) in enumerate(categories)}
    return Catalogue(
        item_ids=np.array([i[0] for i in items], dtype=np.int64),
        item_names=[i[1] for i in items],
        item_category=np.array([category_at[i[2]] for i in items], dtype=np.int32),
        item_active=np.array([i[3] for i in items], dtype=bool),
        item_price=np.array([i[4] for i in items], dtype=np.int64),
        category_ids=np.array([c[0] for c in categories], dtype=np.int64),
        category_names=[c[1] for c in categories],
        skus={i[5]: i[0] for i in items},
    )


def _lines_sql() -> str:
    """Purchase lines as (member, sku, epoch, qty); a purchase without ``items`` but with a ``sku``
    counts as one line, keyed by its item id (as text) in the SKU's place. SKUs are matched to items in Python: a join against the catalogue under
    row-level security planned as a nested loop and cost a minute on a million events."""
    event = _table(Event)
    ts = _epoch("e.ts")
    if connection.vendor == "postgresql":
        return f"""
        SELECT e.member_id, l->>'sku', {ts},
               CASE WHEN jsonb_typeof(l->'qty') = 'number' THEN GREATEST((l->>'qty')::numeric::int, 1) ELSE 1 END
        FROM {event} e
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(e.props->'items') = 'array' THEN e.props->'items' ELSE '[]'::jsonb END) l
        WHERE e.tenant_id = %s AND e.kind = 'purchase' AND e.ts < %s
        UNION ALL
        SELECT e.member_id, CAST(e.item_id AS TEXT), {ts}, 1 FROM {event} e
        WHERE e.tenant_id = %s AND e.kind = 'purchase' AND e.ts < %s AND e.item_id IS NOT NULL
          AND COALESCE(jsonb_array_length(CASE WHEN jsonb_typeof(e.props->'items') = 'array'
                                               THEN e.props->'items' END), 0) = 0
        """  # noqa: S608 - table names only
    return f"""
    SELECT e.member_id, json_extract(l.value, '$.sku'), {ts},
           CASE WHEN json_type(l.value, '$.qty') = 'integer' THEN max(json_extract(l.value, '$.qty'), 1) ELSE 1 END
    FROM {event} e, json_each(e.props, '$.items') l
    WHERE e.tenant_id = %s AND e.kind = 'purchase' AND e.ts < %s AND json_type(e.props, '$.items') = 'array'
    UNION ALL
    SELECT e.member_id, CAST(e.item_id AS TEXT), {ts}, 1 FROM {event} e
    WHERE e.tenant_id = %s AND e.kind = 'purchase' AND e.ts < %s AND e.item_id IS NOT NULL
      AND COALESCE(json_array_length(e.props, '$.items'), 0) = 0
    """  # noqa: S608 - table names only


def read_lines(index: dict[int, int], catalogue: Catalogue, as_of: datetime) -> Lines:
    tenant_id = require_tenant().pk
    rows = _fetch(_lines_sql(), [tenant_id, _param(as_of), tenant_id, _param(as_of)])
    item_at = catalogue.item_index()
    by_sku = {sku: item_at[int(pk)] for sku, pk in catalogue.skus.items()}
    by_id = {str(pk): n for pk, n in item_at.items()}
    kept = []
    for m, key, t, q in rows:
        at = index.get(m)
        item = by_sku.get(key)
        if item is None:
            item = by_id.get(key)
        if at is not None and item is not None:
            kept.append((at, item, t, q))
    if not kept:
        empty = np.zeros(0, dtype=np.int64)
        return Lines(empty, empty.astype(np.int32), empty.astype(np.float64), empty.astype(np.int32))
    data = np.array(kept, dtype=np.float64)
    order = np.lexsort((data[:, 2], data[:, 0]))
    data = data[order]
    return Lines(member=data[:, 0].astype(np.int64), item=data[:, 1].astype(np.int32), ts=data[:, 2],
                 qty=data[:, 3].astype(np.int32))


def read_interest(index: dict[int, int], n: int, catalogue: Catalogue, lines: Lines,
                  as_of: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Recency-weighted engagement per member and category: events on items, plus purchase lines."""
    c = len(catalogue.category_ids)
    interest = np.zeros((n, c), dtype=np.float32)
    bought = np.zeros((n, c), dtype=np.float32)
    if c == 0:
        return interest, bought
    tau = float(INTEREST_HALF_LIFE_DAYS * DAY / np.log(2))
    now = as_of.timestamp()
    weight = "CASE kind " + " ".join(f"WHEN '{k}' THEN {w!r}" for k, w in KIND_WEIGHTS.items()) + " ELSE 0 END"
    # Grouped by item rather than joined to categories: no join against the RLS-guarded catalogue,
    # and the (member, item) groups map to categories in numpy.
    sql = (f"SELECT member_id, item_id, SUM({weight} * EXP((t - {now!r}) / {tau!r})) FROM ("  # noqa: S608
           f"SELECT member_id, item_id, kind, {_epoch('ts')} AS t FROM {_table(Event)} "
           f"WHERE tenant_id = %s AND ts < %s AND item_id IS NOT NULL AND kind <> 'purchase' {_fence()}) s "
           f"GROUP BY member_id, item_id")
    rows = _fetch(sql, [require_tenant().pk, _param(as_of)])
    item_at = catalogue.item_index()
    kept = [(index[m], item_at[i], w) for m, i, w in rows if m in index and i in item_at]
    if kept:
        data = np.array(kept, dtype=np.float64)
        cats = catalogue.item_category[data[:, 1].astype(np.int64)]
        np.add.at(interest, (data[:, 0].astype(np.int64), cats), data[:, 2])
    if len(lines.member):
        w = PURCHASE_LINE_WEIGHT * lines.qty * np.exp((lines.ts - now) / tau)
        cats = catalogue.item_category[lines.item]
        np.add.at(bought, (lines.member, cats), w.astype(np.float32))
        interest += bought
    return interest, bought


def read_features(as_of: datetime) -> Features:
    """Everything the computation needs about the tenant in context, as of ``as_of`` (exclusive)."""
    import time

    seconds: dict[str, float] = {}
    started = time.monotonic()
    tenant_id = require_tenant().pk
    members = list(Member.objects.filter(tenant_id=tenant_id, erased_at__isnull=True)
                   .order_by("id").values_list("id", "consent_profiling", "first_seen_at"))
    member_ids = np.array([m[0] for m in members], dtype=np.int64)
    profiling = np.array([m[1] for m in members], dtype=bool)
    first_seen = np.array([m[2].timestamp() for m in members], dtype=np.float64)
    index = {int(pk): n for n, pk in enumerate(member_ids)}
    n = len(member_ids)
    seconds["read_members"] = time.monotonic() - started

    mark = time.monotonic()
    now, before = read_activity(index, n, [as_of, as_of - timedelta(days=HORIZON_DAYS)])
    seconds["read_activity"] = time.monotonic() - mark

    mark = time.monotonic()
    catalogue = read_catalogue()
    lines = read_lines(index, catalogue, as_of)
    seconds["read_purchase_lines"] = time.monotonic() - mark

    mark = time.monotonic()
    interest, bought = read_interest(index, n, catalogue, lines, as_of)
    seconds["read_interest"] = time.monotonic() - mark
    return Features(as_of=as_of, member_ids=member_ids, profiling=profiling, first_seen=first_seen, now=now,
                    before=before, catalogue=catalogue, interest=interest, interest_bought=bought, lines=lines,
                    seconds=seconds)
