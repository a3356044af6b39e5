"""Tenant tasks: tenant_id first, run in the tenant's context, and really go through a worker."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from config.celery import app as celery_app
from tenants import actions
from tenants.context import current_tenant, tenant_context
from tenants.models import AuditEvent
from tenants.tasks import tenant_task


@tenant_task(name="tests.record_audit")
def record_audit(tenant_id: int, action: str) -> int:
    assert current_tenant().pk == tenant_id
    return AuditEvent.objects.create(action=action).pk


@pytest.mark.django_db
def test_task_runs_inside_its_tenant(tenant_a, tenant_b):
    pk = record_audit.apply(args=(tenant_a.pk, "from-task")).get()
    with tenant_context(tenant_a):
        assert AuditEvent.objects.get(pk=pk).action == "from-task"
    with tenant_context(tenant_b):
        assert not AuditEvent.objects.filter(action="from-task").exists()


@pytest.mark.django_db
def test_task_for_missing_or_suspended_tenant_does_nothing(tenant_a):
    assert record_audit.apply(args=(999_999, "ghost")).get() is None
    actions.set_tenant_status(tenant_a, "suspended")
    assert record_audit.apply(args=(tenant_a.pk, "while-suspended")).get() is None
    with tenant_context(tenant_a):
        assert not AuditEvent.objects.filter(action="while-suspended").exists()


@pytest.mark.skipif(not settings.CELERY_BROKER_URL, reason="needs REDIS_URL: a real broker and worker")
@pytest.mark.django_db(transaction=True)
def test_task_goes_through_a_real_worker_on_redis(tenant_a):
    from celery.contrib.testing.worker import start_worker

    celery_app.conf.task_always_eager = False
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            record_audit.delay(tenant_a.pk, "via-redis")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with tenant_context(tenant_a):
                    if AuditEvent.objects.filter(action="via-redis").exists():
                        break
                time.sleep(0.1)
    finally:
        celery_app.conf.task_always_eager = True
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(action="via-redis").count() == 1
