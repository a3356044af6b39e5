"""Celery plumbing for tenant work: every tenant task takes ``tenant_id`` first and runs in its context."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Task, shared_task
from django.db import transaction

from tenants import resolvers
from tenants.context import tenant_context, unscoped
from tenants.models import Tenant

logger = logging.getLogger("jingzhun.tasks")


class TenantTask(Task):
    """Base class: resolves ``tenant_id`` (the first argument) and runs the body inside its context.

    A tenant that no longer exists makes the task a no-op; a suspended one too, unless the task
    sets ``run_when_suspended`` (money-related work must not stop with the marketing).
    """

    abstract = True
    acks_late = True
    run_when_suspended = False

    def __call__(self, tenant_id: int, *args, **kwargs):
        tenant = resolvers.tenant_by_id(int(tenant_id))
        if tenant is None:
            logger.warning("task %s: tenant %s is gone; nothing to do", self.name, tenant_id)
            return None
        if not tenant.is_active and not self.run_when_suspended:
            logger.info("task %s: tenant %s is suspended; skipped", self.name, tenant_id)
            return None
        with tenant_context(tenant):
            return super().__call__(tenant.pk, *args, **kwargs)


def enqueue_on_commit(task: Task, tenant_id: int, *args, **kwargs) -> None:
    """Send the task once the current transaction commits, so the worker sees what we wrote."""
    transaction.on_commit(lambda: task.delay(tenant_id, *args, **kwargs))


def fan_out(task: Task, *args, **kwargs) -> int:
    """Enqueue ``task(tenant_id, *args)`` for every active tenant; for beat entries."""
    with unscoped(reason=f"fan out {task.name} to active tenants"):
        ids = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True))
    for tenant_id in ids:
        task.delay(tenant_id, *args, **kwargs)
    return len(ids)


def tenant_task(*dargs, **dkwargs) -> Callable:
    """``@tenant_task(...)`` = ``@shared_task(base=TenantTask, ...)``."""
    dkwargs.setdefault("base", TenantTask)
    return shared_task(*dargs, **dkwargs)
