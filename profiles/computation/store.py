"""Writing a run's results: the tenant's old rows out, the new ones in, in one transaction.

Readers keep seeing the previous run until the run commits (MVCC), and a re-run replaces rather
than adds, so the same data gives the same rows. On PostgreSQL the rows travel by COPY into a
temporary staging table and then one ``INSERT … SELECT`` (COPY cannot target a table with
row-level security, and the INSERT keeps the tenant policy's check); elsewhere by ``bulk_create``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from django.db import connection, models

from tenants.context import require_tenant

BATCH = 2000


def replace_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple]) -> int:
    """Delete the tenant's rows of ``model`` and insert ``rows`` (tuples in ``fields`` order)."""
    tenant_id = require_tenant().pk
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])  # noqa: S608
    if connection.vendor == "postgresql":
        return _copy(model, fields, rows, tenant_id)
    return _bulk_create(model, fields, rows)


def _bulk_create(model, fields: Sequence[str], rows: Iterable[tuple]) -> int:
    written = 0
    batch = []
    for row in rows:
        batch.append(model(**dict(zip(fields, row, strict=True))))
        if len(batch) >= BATCH:
            model.objects.bulk_create(batch)
            written += len(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)
        written += len(batch)
    return written


def _copy(model, fields: Sequence[str], rows: Iterable[tuple], tenant_id: int) -> int:
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    columns = ["tenant_id"] + [f.column for f in concrete]
    quote = connection.ops.quote_name
    column_list = ", ".join(quote(c) for c in columns)
    table = quote(meta.db_table)
    stage = quote(f"stage_{meta.db_table}")
    json_at = [n for n, f in enumerate(concrete) if isinstance(f, models.JSONField)]
    written = 0
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "  # noqa: S608
                       f"SELECT {column_list} FROM {table} WITH NO DATA")
        cursor.execute(f"TRUNCATE {stage}")
        with cursor.copy(f"COPY {stage} ({column_list}) FROM STDIN") as copy:
            for row in rows:
                values = list(row)
                for n in json_at:
                    values[n] = json.dumps(values[n], ensure_ascii=False)
                copy.write_row([tenant_id, *values])
                written += 1
        cursor.execute(f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {stage}")  # noqa: S608
        cursor.execute(f"TRUNCATE {stage}")
    return written
