"""Row-Level Security as the backstop under the ORM (PostgreSQL only; a no-op elsewhere).

Use ``EnableTenantRLS("modelname")`` in the migration that creates a tenant-owned table.
"""

from __future__ import annotations

from django.db.migrations.operations.base import Operation

POLICY = "tenant_isolation"
# NULLIF: once a transaction-local setting has been used on a connection, reading it afterwards
# gives '' rather than NULL, and ''::bigint would be an error instead of "no rows".
PREDICATE = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint"
    " OR current_setting('app.unscoped', true) = 'on'"
)


def enable_sql(table: str) -> list[str]:
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS {POLICY} ON "{table}"',
        f'CREATE POLICY {POLICY} ON "{table}" USING ({PREDICATE}) WITH CHECK ({PREDICATE})',
    ]


def disable_sql(table: str) -> list[str]:
    return [
        f'DROP POLICY IF EXISTS {POLICY} ON "{table}"',
        f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
    ]


class EnableTenantRLS(Operation):
    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str):
        self.model_name = model_name

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.model_name], {})

    def state_forwards(self, app_label, state):
        pass

    def _run(self, app_label, schema_editor, state, statements_for):
        if schema_editor.connection.vendor != "postgresql":
            return
        model = state.apps.get_model(app_label, self.model_name)
        for sql in statements_for(model._meta.db_table):
            schema_editor.execute(sql)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self._run(app_label, schema_editor, to_state, enable_sql)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self._run(app_label, schema_editor, from_state, disable_sql)

    def describe(self):
        return f"Enable tenant row-level security on {self.model_name}"

    @property
    def migration_name_fragment(self):
        return f"rls_{self.model_name.lower()}"


def backfill_every_tenant(schema_editor, table: str, column: str, expression: str, batch: int = 10_000) -> bool:
    """``UPDATE table SET column = expression`` over all tenants' rows, in id ranges of ``batch``;
    False when PostgreSQL found the table empty.

    For data migrations on big tables: each range is its own short transaction (no table-long lock
    or transaction), rows already right are skipped, and on PostgreSQL each range runs unscoped,
    since the owner is bound by the tenant policy too (FORCE).
    """
    from django.db import transaction

    connection = schema_editor.connection
    assign = f'UPDATE "{table}" SET {column} = {expression}'  # noqa: S608 - identifiers from the migration
    if connection.vendor != "postgresql":
        schema_editor.execute(f"{assign} WHERE {column} IS NOT {expression}")
        return True
    with connection.cursor() as cursor:
        with transaction.atomic(using=connection.alias):
            cursor.execute("SELECT set_config('app.unscoped', 'on', true)")
            cursor.execute(f'SELECT min(id), max(id) FROM "{table}"')  # noqa: S608 - the migration's table
            low, high = cursor.fetchone()
        if low is None:
            return False
        for start in range(low, high + 1, batch):
            with transaction.atomic(using=connection.alias):
                cursor.execute("SELECT set_config('app.unscoped', 'on', true)")
                cursor.execute(f"{assign} WHERE id >= %s AND id < %s AND {column} IS DISTINCT FROM {expression}",
                               [start, start + batch])
    return True
