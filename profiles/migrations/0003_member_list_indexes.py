"""Indexes the console member list needs at a million members (bench/member_list.py).

Built CONCURRENTLY on PostgreSQL (no write lock on a live members table), so the migration is
non-atomic; SQLite gets plain indexes. The Django state records the same indexes.
"""

from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Right, Upper

INDEXES = {
    "member_tenant_points": "(tenant_id, points DESC, id)",
    "member_tenant_first_seen": "(tenant_id, first_seen_at DESC, id)",
    # Last-4 phone search compares right(phone_masked, 4) exactly (a suffix LIKE always scans).
    "member_tenant_phone4": "(tenant_id, right(phone_masked, 4))",
    # Nickname prefix search is UPPER(nickname) LIKE 'ABC%': pattern ops whatever the collation.
    "member_tenant_nick_upper": "(tenant_id, upper(nickname::text) text_pattern_ops)",
}


def create(apps, schema_editor):
    table = apps.get_model("profiles", "Member")._meta.db_table
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name, columns in INDEXES.items():
        if schema_editor.connection.vendor != "postgresql" and "(" in columns[1:]:
            continue  # expression indexes matter at PostgreSQL scale only; SQLite lacks right()
        schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS {name} ON "{table}" {columns}')


def drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("profiles", "0002_computed_profiles")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create, drop)],
            state_operations=[
                migrations.AddIndex("member", models.Index(fields=["tenant", "-points", "id"],
                                                           name="member_tenant_points")),
                migrations.AddIndex("member", models.Index(fields=["tenant", "-first_seen_at", "id"],
                                                           name="member_tenant_first_seen")),
                migrations.AddIndex("member", models.Index(F("tenant"), Right("phone_masked", 4),
                                                           name="member_tenant_phone4")),
                migrations.AddIndex("member", models.Index(F("tenant"), Upper("nickname"),
                                                           name="member_tenant_nick_upper")),
            ],
        ),
    ]
