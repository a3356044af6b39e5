"""The tenant context: who the current request, command or task acts for.

Set at every edge (console middleware, API authentication, notify view, task base class) with
``tenant_context`` and always reset in ``finally``. Tenant-owned querysets fail closed without it.

Entering a context opens a transaction (the unit of work); on PostgreSQL it also sets ``app.tenant_id``
transaction-locally, which the Row-Level Security policies read. Leaving restores the previous
value before the (possibly nested) transaction ends, so a savepoint never leaks it to the outer
transaction and a pooled connection never carries it to the next request.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import connection, transaction

from tenants.prepared import prepared_cursor

if TYPE_CHECKING:
    from tenants.models import Tenant

logger = logging.getLogger("jingzhun.tenancy")

_current_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("jz_tenant", default=None)
_unscoped_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar("jz_unscoped", default=None)


class TenantContextError(RuntimeError):
    """A tenant-owned model was used with no tenant in context, or with the wrong one."""


def current_tenant() -> Tenant | None:
    return _current_tenant.get()


def require_tenant() -> Tenant:
    tenant = _current_tenant.get()
    if tenant is None:
        raise TenantContextError(
            "No tenant in context: wrap the work in tenants.context.tenant_context(tenant) "
            "or, for deliberate cross-tenant work, unscoped(reason=...)."
        )
    return tenant


def unscoped_reason() -> str | None:
    return _unscoped_reason.get()


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _swap_gucs(values: dict[str, str]) -> dict[str, str]:
    """Set transaction-local settings in one round trip; return what they were before."""
    names = list(values)
    reads = ", ".join("coalesce(current_setting(%s, true), '')" for _ in names)
    writes = ", ".join("set_config(%s, %s, true)" for _ in names)
    params: list[str] = list(names)
    for name in names:
        params += [name, values[name]]
    with prepared_cursor() as cursor:  # every unit of work on PostgreSQL runs it
        cursor.execute(f"SELECT {reads}, {writes}", params)  # noqa: S608 - only placeholders
        row = cursor.fetchone()
    return dict(zip(names, row[: len(names)], strict=True))


@contextmanager
def _gucs(values: dict[str, str]) -> Iterator[None]:
    """One unit of work; on PostgreSQL it holds transaction-local settings, restoring the old ones."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if not _is_postgres():
            yield
            return
        previous = _swap_gucs(values)
        yield
        # The outermost transaction's COMMIT or ROLLBACK drops transaction-local settings by itself
        # (no extra round trip on every request). Inside a savepoint, a rollback undoes set_config
        # too; but a clean exit must put the old values back, or they would outlive this block.
        if not outermost and not connection.needs_rollback:
            _swap_gucs(previous)


@contextmanager
def tenant_context(tenant: Tenant) -> Iterator[Tenant]:
    """Act for ``tenant`` inside the block. Re-entering for the same tenant nests; another raises."""
    active = _current_tenant.get()
    if active is not None and active.pk != tenant.pk:
        raise TenantContextError(f"Tenant {active.pk} is in context; refusing to switch to {tenant.pk} inside it.")
    token = _current_tenant.set(tenant)
    # A tenant block inside an unscoped one is scoped again, in the ORM and in the database.
    unscoped_token = _unscoped_reason.set(None)
    try:
        with _gucs({"app.tenant_id": str(tenant.pk), "app.unscoped": ""}):
            yield tenant
    finally:
        _unscoped_reason.reset(unscoped_token)
        _current_tenant.reset(token)


@contextmanager
def unscoped(reason: str) -> Iterator[None]:
    """The one escape from tenant scoping: named, logged and visible to grep."""
    if not reason or not reason.strip():
        raise ValueError("unscoped() needs a reason")
    logger.info("unscoped access: %s", reason)
    token = _unscoped_reason.set(reason)
    try:
        with _gucs({"app.unscoped": "on"}):
            yield
    finally:
        _unscoped_reason.reset(token)
