"""Two PostgreSQL roles: the owner runs migrations, the app role (bound by RLS) runs everything else.

`migrate` connects with MIGRATION_DATABASE_URL (the owner) when it is set and, after migrating,
grants the app role (the user of DATABASE_URL) plain DML on every table and sequence.
The app role gets no TRUNCATE (it would skip RLS) and no DDL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dj_database_url
from django.conf import settings
from django.db import connections


def app_role() -> str | None:
    if not settings.MIGRATION_DATABASE_URL or not settings.USING_POSTGRES:
        return None
    return dj_database_url.parse(settings.DATABASE_URL).get("USER") or None


@contextmanager
def owner_connection(alias: str = "default") -> Iterator[None]:
    """Reconnect ``alias`` with the owner's credentials for the block (same host and database)."""
    if not settings.MIGRATION_DATABASE_URL or not settings.USING_POSTGRES:
        yield
        return
    owner = dj_database_url.parse(settings.MIGRATION_DATABASE_URL)
    conn = connections[alias]
    saved = {k: conn.settings_dict.get(k) for k in ("USER", "PASSWORD", "HOST", "PORT")}
    conn.close()
    conn.settings_dict.update({k: owner.get(k) for k in saved})
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict.update(saved)


def grant_app_role(sender=None, using: str = "default", **kwargs) -> None:
    role = app_role()
    conn = connections[using]
    if role is None or conn.vendor != "postgresql" or conn.settings_dict.get("USER") == role:
        return
    quoted = conn.ops.quote_name(role)
    with conn.cursor() as cursor:
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
