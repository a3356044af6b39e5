"""Nickname search on a plain column, ``nickname_key``, kept equal to upper(nickname) by a trigger.

Why 0003's index on (tenant_id, upper(nickname) text_pattern_ops) went unused: with row-level
security, a condition calling a function that is not leakproof never becomes an index condition
(see 0004), and neither upper() nor LIKE is leakproof. A nickname prefix that few members have read
the whole table, about 1 s at a million members. The search now compares the stored key with
``~>=~`` and ``~<~`` (text_pattern_ops' byte-wise comparisons, leakproof) between the prefix and the
least string after every string that starts with it, which (tenant_id, nickname_key
text_pattern_ops) serves whatever the database's collation. upper() is computed by the database on
both sides, in the trigger and on the searched text, so case is folded exactly as before.

Whether a page reads the matches through that index and sorts them, or walks the list's order
until 50 turn up, is the planner's choice from the key's statistics (the RLS-bound role gets them
because the comparisons are leakproof). A prefix few members have must look rare, so the column
keeps a 1,000-bucket histogram instead of 100 (at a million members, ~0.1 % of them per bucket
rather than 1 %); the backfill ends with ANALYZE of the column, unless the table is empty (the
planner would then take an empty table for granted until autovacuum came by).

Online on PostgreSQL like 0004, hence non-atomic: constant-default column, trigger before the
id-batched backfill, new index built and the unused one dropped CONCURRENTLY. On SQLite, adding
the column rebuilds profiles_member, which drops 0004's triggers: they are created again here
beside the new ones.
"""

import importlib

from django.db import migrations, models

from tenants.rls import backfill_every_tenant

BATCH = 10_000
STATISTICS = 1000

PG_TRIGGER = [
    """CREATE OR REPLACE FUNCTION profiles_member_nickname_key() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.nickname_key := upper(NEW.nickname);
        RETURN NEW;
    END
    $$""",
    'DROP TRIGGER IF EXISTS member_nickname_key ON "{table}"',
    # Also on writes to nickname_key itself, so nothing can store a key that disagrees.
    'CREATE TRIGGER member_nickname_key BEFORE INSERT OR UPDATE OF nickname, nickname_key ON "{table}" '
    "FOR EACH ROW EXECUTE FUNCTION profiles_member_nickname_key()",
]
PG_TRIGGER_DROP = [
    'DROP TRIGGER IF EXISTS member_nickname_key ON "{table}"',
    "DROP FUNCTION IF EXISTS profiles_member_nickname_key()",
]
# SQLite's upper() folds ASCII only, as its LIKE did for the old nickname search.
SQLITE_TRIGGER = [
    'CREATE TRIGGER IF NOT EXISTS member_nickname_key_insert AFTER INSERT ON "{table}" '
    'BEGIN UPDATE "{table}" SET nickname_key = upper(NEW.nickname) WHERE id = NEW.id; END',
    'CREATE TRIGGER IF NOT EXISTS member_nickname_key_update AFTER UPDATE OF nickname, nickname_key ON "{table}" '
    "WHEN NEW.nickname_key IS NOT upper(NEW.nickname) "
    'BEGIN UPDATE "{table}" SET nickname_key = upper(NEW.nickname) WHERE id = NEW.id; END',
]
SQLITE_TRIGGER_DROP = [
    "DROP TRIGGER IF EXISTS member_nickname_key_insert",
    "DROP TRIGGER IF EXISTS member_nickname_key_update",
]


def _table(apps) -> str:
    return apps.get_model("profiles", "Member")._meta.db_table


def _run(schema_editor, statements: list[str], table: str) -> None:
    for statement in statements:
        schema_editor.execute(statement.replace("{table}", table))


def _phone_last4_sqlite_trigger() -> list[str]:
    return importlib.import_module("profiles.migrations.0004_member_phone_last4").SQLITE_TRIGGER


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        _run(schema_editor, PG_TRIGGER, _table(apps))
    else:
        _run(schema_editor, SQLITE_TRIGGER + _phone_last4_sqlite_trigger(), _table(apps))


def drop_trigger(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    _run(schema_editor, PG_TRIGGER_DROP if postgres else SQLITE_TRIGGER_DROP, _table(apps))


def restore_phone_last4_trigger(apps, schema_editor):
    # Removing the column rebuilds the table on SQLite too.
    if schema_editor.connection.vendor != "postgresql":
        _run(schema_editor, _phone_last4_sqlite_trigger(), _table(apps))


def backfill(apps, schema_editor):
    table = _table(apps)
    filled = backfill_every_tenant(schema_editor, table, "nickname_key", "upper(nickname)", BATCH)
    if filled and schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'ANALYZE "{table}" (nickname_key)')


def set_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'ALTER TABLE "{_table(apps)}" ALTER COLUMN nickname_key SET STATISTICS {STATISTICS}')


INDEX_NEW = ("member_tenant_nick_key", "(tenant_id, nickname_key text_pattern_ops)")
INDEX_OLD = ("member_tenant_nick_upper", "(tenant_id, upper(nickname::text) text_pattern_ops)")


def _swap(schema_editor, table: str, create: tuple[str, str], drop: str) -> None:
    postgres = schema_editor.connection.vendor == "postgresql"
    concurrently = "CONCURRENTLY " if postgres else ""
    name, columns = create
    if not postgres:
        columns = columns.replace(" text_pattern_ops", "").replace("::text", "")
    schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS {name} ON "{table}" {columns}')
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {drop}")


def swap_indexes(apps, schema_editor):
    _swap(schema_editor, _table(apps), INDEX_NEW, INDEX_OLD[0])


def unswap_indexes(apps, schema_editor):
    _swap(schema_editor, _table(apps), INDEX_OLD, INDEX_NEW[0])


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("profiles", "0004_member_phone_last4"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, restore_phone_last4_trigger),
        migrations.AddField(
            model_name="member",
            name="nickname_key",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(set_statistics, migrations.RunPython.noop),
        migrations.RunPython(create_trigger, drop_trigger),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(swap_indexes, unswap_indexes)],
            state_operations=[
                migrations.RemoveIndex(model_name="member", name="member_tenant_nick_upper"),
                migrations.AddIndex(
                    model_name="member",
                    index=models.Index(fields=["tenant", "nickname_key"], name="member_tenant_nick_key",
                                       opclasses=["int8_ops", "text_pattern_ops"]),
                ),
            ],
        ),
    ]
