"""The scoped manager of tenant-owned models: it fails closed outside a tenant context."""

from __future__ import annotations

from django.db import models

from tenants.context import current_tenant, require_tenant, unscoped_reason


class TenantQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        tenant = current_tenant()
        for obj in objs:
            obj.assign_tenant(tenant)
        return super().bulk_create(objs, *args, **kwargs)


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    # Migrations get a plain manager: they run as the owner, outside any tenant context.
    use_in_migrations = False

    def get_queryset(self) -> TenantQuerySet:
        qs = super().get_queryset()
        if unscoped_reason() is not None:
            return qs
        return qs.filter(tenant_id=require_tenant().pk)
