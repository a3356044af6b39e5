"""Hot statements prepared on the server, on Django's own connection and in its transaction.

Django binds parameters on the client (psycopg's ``ClientCursor``), so PostgreSQL parses, rewrites
(Row-Level Security policies included) and plans every statement it receives. For the few large
one-round-trip statements of the hot paths that is most of their cost: the coupon claim spent about
2.5 of its 3.5 ms of PostgreSQL CPU there. A server-binding cursor on the same connection lets
psycopg prepare such a statement once per connection and send only its parameters afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection


class PreparedCursor:
    """``execute`` prepares (once per connection) and runs; logged like Django's own queries."""

    def __init__(self, cursor: psycopg.Cursor):
        self._cursor = cursor

    def execute(self, sql: str, params: dict[str, Any] | list[Any]) -> None:
        with connection.wrap_database_errors:
            if not connection.queries_logged:
                self._cursor.execute(sql, params, prepare=True)
                return
            start = time.monotonic()
            try:
                self._cursor.execute(sql, params, prepare=True)
            finally:
                # Logged as Django logs its own: the statement with its values in place.
                shown = psycopg.ClientCursor(self._cursor.connection).mogrify(sql, params)
                connection.queries_log.append({"sql": shown, "time": f"{time.monotonic() - start:.3f}"})

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self):
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


@contextmanager
def prepared_cursor() -> Iterator[PreparedCursor]:
    """A cursor in the current transaction whose statements are prepared on PostgreSQL.

    Errors surface as Django's database exceptions, as from ``connection.cursor()``.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:  # SQLite (the demo): the same calls, nothing to prepare
            yield cursor
        return
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield PreparedCursor(cursor)


_SET_TENANT = "SELECT set_config('app.tenant_id', %s, true), set_config('app.unscoped', '', true)"


class PipelinedTransaction:
    """A transaction of one tenant on Django's connection whose statements leave in rounds.

    Statements queued by ``execute`` inside one ``round()`` are sent together in psycopg's pipeline mode and
    answered together when the round ends: a round is one round trip, however many statements it
    holds. The first round also carries BEGIN and the tenant's transaction-local Row-Level Security
    setting; ``commit()`` queues the COMMIT into the round it is called in.
    """

    def __init__(self, pg: psycopg.Connection, tenant_id: int):
        self._pg = pg
        self._tenant_id = tenant_id
        self._begun = False
        self._shown: list[str] = []

    @contextmanager
    def round(self) -> Iterator[None]:
        self._shown = []
        try:
            with connection.wrap_database_errors, self._pg.pipeline():
                if not self._begun:
                    control = psycopg.Cursor(self._pg)
                    control.execute("BEGIN")
                    self._begun = True
                    self._show("BEGIN", None)
                    control.execute(_SET_TENANT, [str(self._tenant_id)], prepare=True)
                    self._show(_SET_TENANT, [str(self._tenant_id)])
                yield
        finally:
            if connection.queries_logged and self._shown:  # one entry: it is one round trip
                connection.queries_log.append({"sql": "; ".join(self._shown), "time": "0.000"})

    def execute(self, sql: str, params: dict[str, Any] | list[Any]) -> psycopg.Cursor:
        """Queue a (prepared) statement into the current round; its rows once the round is over."""
        cursor = psycopg.Cursor(self._pg)
        cursor.execute(sql, params, prepare=True)
        self._show(sql, params)
        return cursor

    def commit(self) -> None:
        psycopg.Cursor(self._pg).execute("COMMIT")
        self._show("COMMIT", None)

    def _show(self, sql: str, params) -> None:
        if connection.queries_logged:
            self._shown.append(psycopg.ClientCursor(self._pg).mogrify(sql, params) if params is not None else sql)


@contextmanager
def pipelined_transaction(tenant_id: int) -> Iterator[PipelinedTransaction]:
    """A ``PipelinedTransaction`` of the tenant; rolled back unless it committed.

    Only outside any transaction of Django's. On an error nothing is kept (the transaction is rolled
    back) and it surfaces as Django's database exception. Skips Django's connection health check, as
    one failed call on a dead connection is what the check would have cost anyway.
    """
    if connection.in_atomic_block:
        raise RuntimeError("a pipelined transaction is its own: open it outside atomic()")
    connection.ensure_connection()
    pg = connection.connection
    try:
        yield PipelinedTransaction(pg, tenant_id)
    finally:
        # Not committed (an error, or the caller left without committing): end the transaction. A
        # failed statement leaves it open (its COMMIT never ran); a broken connection has none to
        # end, and Django discards it after the request.
        if pg.info.transaction_status in (psycopg.pq.TransactionStatus.INTRANS,
                                          psycopg.pq.TransactionStatus.INERROR):
            with connection.wrap_database_errors:
                pg.execute("ROLLBACK")


def execute_alone(tenant_id: int, sql: str, params: dict[str, Any] | list[Any]) -> tuple | None:
    """Run one statement as a whole transaction of the tenant, in one round trip; its first row.

    BEGIN, the tenant's transaction-local Row-Level Security setting, the (prepared) statement and
    COMMIT leave together in psycopg's pipeline mode. Besides three round trips less, a row the
    statement locks (a flash sale's stock row) is released as soon as the server has run it instead of
    after the answer has gone to the client and the COMMIT has come back.
    """
    with pipelined_transaction(tenant_id) as tx:
        with tx.round():
            statement = tx.execute(sql, params)
            tx.commit()
    with connection.wrap_database_errors:
        return statement.fetchone()
