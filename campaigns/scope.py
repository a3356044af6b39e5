"""Enter a tenant's unit of work once: re-entering the same tenant only opens a savepoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

from tenants.context import current_tenant, tenant_context
from tenants.models import Tenant


@contextmanager
def within(tenant: Tenant) -> Iterator[None]:
    """``tenant_context`` for callers outside it; a plain savepoint when the edge already set it.

    On PostgreSQL, re-entering ``tenant_context`` costs two ``set_config`` round trips, which the
    claim path (the hottest write in the project) can do without.
    """
    active = current_tenant()
    if active is not None and active.pk == tenant.pk:
        with transaction.atomic():
            yield
    else:
        with tenant_context(tenant):
            yield


@contextmanager
def joined(tenant: Tenant) -> Iterator[None]:
    """The tenant's open unit of work as it is (no savepoint), or a new one for callers outside it.

    For actions that undo their own partial effects before raising, so a savepoint would only add
    two round trips.
    """
    active = current_tenant()
    if active is not None and active.pk == tenant.pk:
        yield
    else:
        with tenant_context(tenant):
            yield
