"""State changes around profile runs (the computation itself is ``recompute.recompute``)."""

from __future__ import annotations

from tenants.actions import audit
from tenants.models import Tenant
from tenants.tasks import enqueue_on_commit


def request_recompute(tenant: Tenant, *, actor=None) -> None:
    """Queue a run for ``tenant`` once the caller's transaction commits; a busy tenant skips it."""
    from profiles.tasks import recompute_profiles

    audit(tenant, "profiles.recompute_requested", actor=actor, target=tenant.slug)
    enqueue_on_commit(recompute_profiles, tenant.pk, "console")
