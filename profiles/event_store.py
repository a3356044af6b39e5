"""Appending behaviour events: one statement per batch, deduplicated by (tenant, event_id).

On PostgreSQL the batch travels as one array per column and lands with ``INSERT … SELECT FROM
unnest(…) ON CONFLICT (tenant_id, event_id) DO NOTHING``: a single round trip, and the unique index
decides what is a duplicate, so concurrent posts of the same batch store each event exactly once.
Rows go in sorted by ``event_id`` so that two batches sharing events take their index locks in the
same order and cannot deadlock. Elsewhere (SQLite, the zero-setup demo) ``bulk_create`` with
``ignore_conflicts`` does the same job more slowly.

Growth plan for the table (``profiles_event``), on paper until the volume asks for it:

* Partition by month on ``ts`` (``PARTITION BY RANGE (ts)``), partitions created ahead by a beat
  task. PostgreSQL requires the partition key in every unique index, so the dedupe key becomes
  ``(tenant_id, event_id, month)``: an event re-sent within the same month is still caught, and
  since ``ts`` older than 30 days is refused at the door, a re-send can only straddle the boundary
  of two adjacent months; insert into both months' keys through a small ``event_dedupe(tenant_id,
  event_id)`` table kept for 35 days if exact dedupe across the boundary is ever needed.
* Retention: raw events kept 13 months (a year of seasonality for the profile computation), then
  a partition is detached and dropped in one statement instead of a long ``DELETE``; aggregates
  the profiles need live in their own tables. Erasure deletes a member's rows in every partition.
* Indexes stay per partition and lead with ``tenant_id`` (``(tenant_id, member_id, ts)``), so Citus
  can later distribute the table on ``tenant_id`` unchanged.
"""

from __future__ import annotations

import datetime as dt
import json

from django.db import connection

from profiles.ingest import EventRow
from profiles.models import Event

_INSERT = """
INSERT INTO {table} (tenant_id, member_id, event_id, kind, item_id, amount_fen, ts, props, received_at)
SELECT %s, %s, e.event_id, e.kind, e.item_id, e.amount_fen,
       'epoch'::timestamptz + e.ts_us * interval '1 microsecond', e.props::jsonb, now()
FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[])
     AS e(event_id, kind, item_id, amount_fen, ts_us, props)
ON CONFLICT (tenant_id, event_id) DO NOTHING
"""


def insert_events(tenant_id: int, member_id: int, rows: list[EventRow], item_ids: dict[str, int]) -> int:
    """Store the rows that are new; return how many were. Runs inside the tenant's context."""
    if not rows:
        return 0
    rows = sorted(rows, key=lambda r: r.event_id)
    if connection.vendor == "postgresql":
        return _insert_unnest(tenant_id, member_id, rows, item_ids)
    return _insert_orm(rows, member_id, item_ids)


def _insert_unnest(tenant_id: int, member_id: int, rows: list[EventRow], item_ids: dict[str, int]) -> int:
    sql = _INSERT.format(table=connection.ops.quote_name(Event._meta.db_table))
    params = [
        tenant_id,
        member_id,
        [r.event_id for r in rows],
        [r.kind for r in rows],
        [item_ids[r.sku] if r.sku is not None else None for r in rows],
        [r.amount_fen for r in rows],
        [r.ts_us for r in rows],
        [r.props for r in rows],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
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
