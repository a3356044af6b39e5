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
    """A cursor in the current transaction whose statements are prepared (PostgreSQL only).

    Errors surface as Django's database exceptions, as from ``connection.cursor()``.
    """
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield PreparedCursor(cursor)
