"""Fail-closed tenant scoping in the ORM, and Row-Level Security under it on PostgreSQL."""

from __future__ import annotations

import pytest
from django.core import checks
from django.db import connection, models, transaction
from django.db.utils import ProgrammingError

from tenants.checks import check_tenant_owned_models, tenant_owned_models
from tenants.context import TenantContextError, current_tenant, tenant_context, unscoped
from tenants.models import AuditEvent
from tests.fixtures import postgres_only

pytestmark = pytest.mark.django_db


def _rows(tenant, action):
    with tenant_context(tenant):
        return AuditEvent.objects.create(action=action, target="same-target")


def test_query_without_tenant_context_raises(tenant_a):
    with pytest.raises(TenantContextError):
        list(AuditEvent.objects.all())
    with pytest.raises(TenantContextError):
        AuditEvent.objects.create(action="x")


def test_tenant_sees_only_its_rows_and_cannot_touch_anothers(tenant_a, tenant_b):
    row_b = _rows(tenant_b, "b-only")
    with tenant_context(tenant_a):
        assert not AuditEvent.objects.filter(action="b-only").exists()
        assert AuditEvent.objects.filter(pk=row_b.pk).update(action="hijacked") == 0
        assert AuditEvent.objects.filter(pk=row_b.pk).delete()[0] == 0
        with pytest.raises(AuditEvent.DoesNotExist):
            AuditEvent.objects.get(pk=row_b.pk)
    with tenant_context(tenant_b):
        assert AuditEvent.objects.get(pk=row_b.pk).action == "b-only"


def test_saving_fills_tenant_from_context_and_refuses_a_mismatch(tenant_a, tenant_b):
    row_b = _rows(tenant_b, "mine")
    with tenant_context(tenant_a):
        fresh = AuditEvent(action="filled")
        fresh.save()
        assert fresh.tenant_id == tenant_a.pk
        row_b.action = "overwritten"
        with pytest.raises(TenantContextError):
            row_b.save()
        with pytest.raises(TenantContextError):
            AuditEvent.objects.bulk_create([AuditEvent(action="x", tenant_id=tenant_b.pk)])


def test_contexts_nest_for_the_same_tenant_and_refuse_another(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        with tenant_context(tenant_a):
            assert current_tenant() == tenant_a
        with pytest.raises(TenantContextError):
            with tenant_context(tenant_b):
                pass
        assert current_tenant() == tenant_a
    assert current_tenant() is None


def test_unscoped_sees_every_tenant_and_needs_a_reason(tenant_a, tenant_b):
    _rows(tenant_a, "shared")
    _rows(tenant_b, "shared")
    with pytest.raises(ValueError):
        with unscoped(reason=" "):
            pass
    with unscoped(reason="test: count across tenants"):
        assert AuditEvent.objects.filter(action="shared").count() == 2
        with tenant_context(tenant_a):  # scoped again inside
            assert AuditEvent.objects.filter(action="shared").count() == 1


def test_error_in_context_rolls_back_its_writes(tenant_a):
    with pytest.raises(RuntimeError):
        with tenant_context(tenant_a):
            AuditEvent.objects.create(action="doomed")
            raise RuntimeError("boom")
    with tenant_context(tenant_a):
        assert not AuditEvent.objects.filter(action="doomed").exists()


def test_system_check_flags_unique_without_tenant_and_plain_manager():
    from tenants.models import TenantOwnedModel

    class BadUnique(TenantOwnedModel):
        code = models.CharField(max_length=10, unique=True)

        class Meta:
            app_label = "tenants"
            indexes = [models.Index(fields=["tenant", "code"], name="bad_unique_ix")]

    class BadManager(TenantOwnedModel):
        name = models.CharField(max_length=10)
        objects = models.Manager()

        class Meta:
            app_label = "tenants"
            constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="bad_manager_uq")]

    try:
        ids = {(e.obj, e.id) for e in check_tenant_owned_models()}
        assert (BadUnique, "jingzhun.E002") in ids
        assert (BadManager, "jingzhun.E001") in ids
        assert not any(obj is AuditEvent for obj, _ in ids)
    finally:
        from django.apps import apps

        for name in ("badunique", "badmanager"):
            apps.all_models["tenants"].pop(name, None)
        apps.clear_cache()


def test_project_passes_its_own_checks():
    assert [e for e in checks.run_checks() if e.level >= checks.ERROR] == []


# --- PostgreSQL Row-Level Security -------------------------------------------------------------

@postgres_only
def test_the_test_role_is_really_bound_by_rls():
    """A superuser, a BYPASSRLS role or the table owner would pass every RLS test below vacuously."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)
        for model in tenant_owned_models():
            cursor.execute(
                "SELECT pg_get_userbyid(relowner) <> current_user, relrowsecurity, relforcerowsecurity "
                "FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
            assert cursor.fetchone() == (True, True, True), model._meta.db_table
            cursor.execute("SELECT count(*) FROM pg_policies WHERE tablename = %s AND policyname = 'tenant_isolation'",
                           [model._meta.db_table])
            assert cursor.fetchone()[0] == 1, model._meta.db_table


@postgres_only
def test_raw_sql_sees_nothing_without_a_tenant_and_only_its_own_with_one(tenant_a, tenant_b):
    row_a = _rows(tenant_a, "raw")
    row_b = _rows(tenant_b, "raw")
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        assert cursor.fetchone()[0] == 0
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE action = 'raw'")
        assert [r[0] for r in cursor.fetchall()] == [row_a.pk]
        cursor.execute(f"UPDATE {table} SET action = 'hijacked' WHERE id = %s", [row_b.pk])
        assert cursor.rowcount == 0
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [row_b.pk])
        assert cursor.rowcount == 0
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            cursor.execute(f"INSERT INTO {table} (tenant_id, action, target, details, created_at) "
                           "VALUES (%s, 'forged', '', '{}', now())", [tenant_b.pk])
    with tenant_context(tenant_b):
        assert AuditEvent.objects.get(pk=row_b.pk).action == "raw"


@postgres_only
def test_setting_does_not_outlive_the_context(tenant_a):
    with tenant_context(tenant_a):
        pass
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('app.tenant_id', true), '')")
        assert cursor.fetchone()[0] == ""


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_setting_does_not_outlive_an_outermost_context(tenant_a):
    """No restore round trip at the top level: the commit itself must drop the setting."""
    with tenant_context(tenant_a):
        AuditEvent.objects.create(action="top-level")
    assert not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('app.tenant_id', true), '')")
        assert cursor.fetchone()[0] == ""
        cursor.execute(f"SELECT count(*) FROM {AuditEvent._meta.db_table}")
        assert cursor.fetchone()[0] == 0
