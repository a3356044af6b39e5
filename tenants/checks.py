"""System checks that keep tenant-owned models honest (DESIGN.md, "Tenancy")."""

from __future__ import annotations

from django.apps import apps
from django.core import checks
from django.db import models

from tenants.managers import TenantManager


def tenant_owned_models() -> list[type[models.Model]]:
    from tenants.models import TenantOwnedModel

    return [
        m for m in apps.get_models()
        if issubclass(m, TenantOwnedModel) and not m._meta.abstract and not m._meta.proxy
    ]


def _unique_field_sets(model: type[models.Model]) -> list[tuple[str, list[str]]]:
    meta = model._meta
    sets: list[tuple[str, list[str]]] = []
    for field in meta.local_fields:
        if field.unique and not field.primary_key:
            sets.append((f"field {field.name} (unique=True)", [field.name]))
    for together in meta.unique_together:
        sets.append((f"unique_together {together}", list(together)))
    for constraint in meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            fields = list(constraint.fields)
            if not fields:  # expression constraints: look at the columns they mention
                fields = [str(e) for e in constraint.expressions]
            sets.append((f"constraint {constraint.name}", fields))
    return sets


@checks.register(checks.Tags.models)
def check_tenant_owned_models(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for model in tenant_owned_models():
        label = model._meta.label
        if not isinstance(model._default_manager, TenantManager):
            errors.append(checks.Error(
                f"{label}: the default manager must be a tenants.managers.TenantManager",
                hint="Declare `objects = TenantManager()` first, or do not override it.",
                obj=model, id="jingzhun.E001",
            ))
        for where, fields in _unique_field_sets(model):
            if not any(f in ("tenant", "tenant_id") or "tenant" in f for f in fields):
                errors.append(checks.Error(
                    f"{label}: {where} does not include tenant",
                    hint="Every unique constraint of a tenant-owned model includes `tenant`.",
                    obj=model, id="jingzhun.E002",
                ))
        leading = [list(ix.fields)[:1] for ix in model._meta.indexes] + [
            fields[:1] for _, fields in _unique_field_sets(model)
        ]
        if not any(lead and lead[0] in ("tenant", "tenant_id") for lead in leading):
            errors.append(checks.Error(
                f"{label}: no index or unique constraint leads with tenant",
                hint="Add e.g. models.Index(fields=['tenant', ...]) in Meta.indexes.",
                obj=model, id="jingzhun.E003",
            ))
    return errors
