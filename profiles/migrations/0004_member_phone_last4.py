"""Last-4 phone search on a plain column, ``phone_last4``, kept equal to right(phone_masked, 4) by a trigger.

Why 0003's index on (tenant_id, right(phone_masked, 4)) went unused: with row-level security,
PostgreSQL evaluates the tenant policy before any condition of the query that calls a function not
marked leakproof, and such a condition never becomes an index condition. right() is not leakproof
(only a superuser can mark a function so), so ``right(phone_masked, 4) = '1234'`` read every row of
the table, about 1 s at a million members. ``phone_last4 = '1234'`` is a plain text equality,
which is leakproof, and (tenant_id, phone_last4) serves it.

Online on PostgreSQL, hence non-atomic: the column comes with a constant default (no table
rewrite; a GENERATED … STORED column would rewrite the table under an exclusive lock, 22 s at a
million rows); the trigger goes in before the backfill, so rows written meanwhile are already
right; the backfill runs in id batches, each its own short transaction; the new index is built and
the unused one dropped CONCURRENTLY. SQLite gets the same trigger (AFTER, SQLite cannot assign to
NEW). A later migration that makes Django rebuild profiles_member on SQLite loses the SQLite
triggers and must create them again; the last-4 search tests fail if it does not.
"""

from django.db import migrations, models

from tenants.rls import backfill_every_tenant

BATCH = 10_000

PG_TRIGGER = [
    """CREATE OR REPLACE FUNCTION profiles_member_phone_last4() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.phone_last4 := right(NEW.phone_masked, 4);
        RETURN NEW;
    END
    $$""",
    'DROP TRIGGER IF EXISTS member_phone_last4 ON "{table}"',
    # Also on writes to phone_last4 itself, so nothing can store a value that disagrees.
    'CREATE TRIGGER member_phone_last4 BEFORE INSERT OR UPDATE OF phone_masked, phone_last4 ON "{table}" '
    "FOR EACH ROW EXECUTE FUNCTION profiles_member_phone_last4()",
]
PG_TRIGGER_DROP = [
    'DROP TRIGGER IF EXISTS member_phone_last4 ON "{table}"',
    "DROP FUNCTION IF EXISTS profiles_member_phone_last4()",
]
# substr(x, -4) is right(x, 4) in SQLite: the last four characters, or all of a shorter string.
SQLITE_TRIGGER = [
    'CREATE TRIGGER IF NOT EXISTS member_phone_last4_insert AFTER INSERT ON "{table}" '
    'BEGIN UPDATE "{table}" SET phone_last4 = substr(NEW.phone_masked, -4) WHERE id = NEW.id; END',
    'CREATE TRIGGER IF NOT EXISTS member_phone_last4_update AFTER UPDATE OF phone_masked, phone_last4 ON "{table}" '
    "WHEN NEW.phone_last4 IS NOT substr(NEW.phone_masked, -4) "
    'BEGIN UPDATE "{table}" SET phone_last4 = substr(NEW.phone_masked, -4) WHERE id = NEW.id; END',
]
SQLITE_TRIGGER_DROP = [
    "DROP TRIGGER IF EXISTS member_phone_last4_insert",
    "DROP TRIGGER IF EXISTS member_phone_last4_update",
]


def _table(apps) -> str:
    return apps.get_model("profiles", "Member")._meta.db_table


def _run(schema_editor, statements: list[str], table: str) -> None:
    for statement in statements:
        schema_editor.execute(statement.replace("{table}", table))


def create_trigger(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    _run(schema_editor, PG_TRIGGER if postgres else SQLITE_TRIGGER, _table(apps))


def drop_trigger(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    _run(schema_editor, PG_TRIGGER_DROP if postgres else SQLITE_TRIGGER_DROP, _table(apps))


def backfill(apps, schema_editor):
    # substr(x, -4) is SQLite's right(x, 4); an empty phone gives '' either way.
    right4 = "right(phone_masked, 4)" if schema_editor.connection.vendor == "postgresql" else "substr(phone_masked, -4)"
    backfill_every_tenant(schema_editor, _table(apps), "phone_last4", right4, BATCH)


INDEX_NEW = ("member_tenant_phone_last4", "(tenant_id, phone_last4)")
INDEX_OLD = ("member_tenant_phone4", "(tenant_id, right(phone_masked, 4))")


def _swap(schema_editor, table: str, create: tuple[str, str], drop: str) -> None:
    postgres = schema_editor.connection.vendor == "postgresql"
    concurrently = "CONCURRENTLY " if postgres else ""
    name, columns = create
    if postgres or "(" not in columns[1:]:  # 0003 built no expression indexes on SQLite
        schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS {name} ON "{table}" {columns}')
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {drop}")


def swap_indexes(apps, schema_editor):
    _swap(schema_editor, _table(apps), INDEX_NEW, INDEX_OLD[0])


def unswap_indexes(apps, schema_editor):
    _swap(schema_editor, _table(apps), INDEX_OLD, INDEX_NEW[0])


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("profiles", "0003_member_list_indexes"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="member",
            name="phone_last4",
            field=models.CharField(blank=True, default="", editable=False, max_length=4),
        ),
        migrations.RunPython(create_trigger, drop_trigger),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(swap_indexes, unswap_indexes)],
            state_operations=[
                migrations.RemoveIndex(model_name="member", name="member_tenant_phone4"),
                migrations.AddIndex(
                    model_name="member",
                    index=models.Index(fields=["tenant", "phone_last4"], name="member_tenant_phone_last4"),
                ),
            ],
        ),
    ]
