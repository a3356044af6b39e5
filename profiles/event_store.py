"""Appending behaviour events: one statement per batch, deduplicated by (tenant, event_id).

On PostgreSQL the batch lands with one ``INSERT … SELECT FROM jsonb_array_elements(…)``, falling back
to ``… ON CONFLICT (tenant_id, event_id) DO NOTHING`` when it meets a duplicate: the unique index
decides what is a duplicate, so concurrent posts of the same batch store each event exactly once.
Rows go in sorted by ``event_id`` so that two batches sharing events take their index locks in the
same order and cannot deadlock. Elsewhere (SQLite, the zero-setup demo) ``bulk_create`` with
``ignore_conflicts`` does the same job more slowly.

Growth plan for the table (``profiles_event``), on paper until the volume asks for it:

* Monthly range partitions on ``ts`` (``PARTITION BY RANGE (ts)``), created three months ahead by a
  beat task, plus a default partition as a safety net. PostgreSQL wants the partition key in every
  unique index, so the dedupe key becomes ``(tenant_id, event_id, ts)`` — it then includes the
  month. A re-sent event carries the same ``ts``, lands in the same partition and is still caught;
  only an event_id reused for a different moment would no longer count as a duplicate. ``ts`` is
  refused when older than 30 days or more than 5 minutes ahead, so writes touch at most two
  partitions, and the (tenant_id, member_id, ts) index stays small per partition.
* Retention: raw events kept 13 months (a year of seasonality for the profile computation, plus
  the current month); older partitions are detached and dropped — one statement each instead of
  a long ``DELETE`` and vacuum. What the profiles need beyond that lives in their aggregates.
  Erasure keeps deleting a member's events across all partitions (by member, through the index).
* Every index keeps leading with ``tenant_id``, so the table can later be distributed on
  ``tenant_id`` (Citus) unchanged.
"""

from __future__ import annotations

import datetime as dt
import json

import msgspec
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from catalog.models import Item
from profiles.ingest import EventRow
from profiles.models import Event
from tenants.context import require_tenant
from tenants.prepared import prepared_cursor

# The whole batch travels as one JSON text: one parameter to quote instead of 3,000 array
# elements (client-side quoting of arrays costs more than the insert), parsed once by PostgreSQL;
# each event's props arrive as the raw JSON the client sent, so they are parsed only there.
_INSERT = """
INSERT INTO {table} (tenant_id, member_id, event_id, kind, item_id, amount_fen, ts, props, received_at)
SELECT %s, %s, e->>0, e->>1, (e->>2)::bigint, (e->>3)::bigint,
       'epoch'::timestamptz + (e->>4)::bigint * interval '1 microsecond', e->5, now()
FROM jsonb_array_elements(%s::jsonb) AS e
"""
_ON_CONFLICT = "ON CONFLICT (tenant_id, event_id) DO NOTHING"

_ITEMS = """
SELECT i.sku, i.id FROM jsonb_array_elements_text(%s::jsonb) AS s(sku)
JOIN {table} AS i ON i.tenant_id = %s AND i.sku = s.sku
"""


def relax_commit() -> None:
    """Let this transaction's commit return before its WAL reaches the disk (PostgreSQL only).

    A batch is then acknowledged without waiting for an fsync, which is most of a batch's latency
    on a busy disk. The trade: if the database server itself crashes, batches acknowledged in the
    last ~0.6 s (3 x wal_writer_delay) can be lost — never half-written, and nothing else is
    affected. So it is the operator's choice (EVENTS_ASYNC_COMMIT=1), off by default; orders and
    payments always keep synchronous commits.
    """
    if connection.vendor == "postgresql" and settings.EVENTS_ASYNC_COMMIT:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def item_ids_for(skus: set[str]) -> dict[str, int]:
    """sku → item id for the skus that exist in the tenant's catalogue, active or not; one query.

    On PostgreSQL written as a join from the batch's skus, so the plan is index probes or a hash
    join whatever the statistics say (``sku IN (…)`` planned as a nested-loop filter on fresh tables).
    """
    if not skus:
        return {}
    if connection.vendor != "postgresql":
        return dict(Item.objects.filter(sku__in=sorted(skus)).values_list("sku", "id"))
    sql = _ITEMS.format(table=connection.ops.quote_name(Item._meta.db_table))
    with prepared_cursor() as cursor:
        cursor.execute(sql, [msgspec.json.encode(sorted(skus)).decode(), require_tenant().pk])
        return dict(cursor.fetchall())


def insert_events(tenant_id: int, member_id: int, rows: list[EventRow], item_ids: dict[str, int]) -> int:
    """Store the rows that are new; return how many were. Runs inside the tenant's context."""
    if not rows:
        return 0
    rows = sorted(rows, key=lambda r: r.event_id)
    if connection.vendor == "postgresql":
        return _insert_json(tenant_id, member_id, rows, item_ids)
    return _insert_orm(rows, member_id, item_ids)


def _insert_json(tenant_id: int, member_id: int, rows: list[EventRow], item_ids: dict[str, int]) -> int:
    """Most batches hold only new events, and a plain INSERT costs about half of ON CONFLICT's
    speculative insertion; so try that first, and on a unique violation (a re-sent batch, or the same
    batch racing in from another request) roll back to the savepoint and let ON CONFLICT sort it out."""
    sql = _INSERT.format(table=connection.ops.quote_name(Event._meta.db_table))
    params = [tenant_id, member_id, msgspec.json.encode([
        (r.event_id, r.kind, item_ids[r.sku] if r.sku is not None else None, r.amount_fen, r.ts_us,
         msgspec.Raw(r.props))
        for r in rows
    ]).decode()]
    # Prepared: the batch travels as one bound parameter instead of a 100 KB literal to quote and parse.
    with prepared_cursor() as cursor:
        try:
            with transaction.atomic():
                cursor.execute(sql, params)
                return cursor.rowcount
        except IntegrityError:
            pass
        cursor.execute(sql + _ON_CONFLICT, params)
        return cursor.rowcount


def _insert_orm(rows: list[EventRow], member_id: int, item_ids: dict[str, int]) -> int:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    seen = set(Event.objects.filter(event_id__in=[r.event_id for r in rows]).values_list("event_id", flat=True))
    fresh = [
        Event(
            event_id=r.event_id, member_id=member_id, kind=r.kind,
            item_id=item_ids[r.sku] if r.sku is not None else None, amount_fen=r.amount_fen,
            ts=epoch + dt.timedelta(microseconds=r.ts_us), props=json.loads(r.props),
        )
        for r in rows if r.event_id not in seen
    ]
    Event.objects.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)
