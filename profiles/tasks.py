"""Profile work for the workers: one tenant's computation, and the nightly fan-out to every tenant."""

from __future__ import annotations

from celery import shared_task

from profiles.computation import recompute
from tenants.context import require_tenant
from tenants.tasks import fan_out, tenant_task


# No retries: a failed run is recorded on its ProfileRun row, the previous results stay in place,
# and the next night's run starts afresh. A run can take minutes on a large tenant.
@tenant_task(max_retries=0, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 300)
def recompute_profiles(tenant_id: int, trigger: str = "beat") -> dict | None:
    """Idempotent (each run rewrites the tenant's results); skipped while another run holds the tenant."""
    run = recompute.recompute(require_tenant(), trigger=trigger)
    if run is None:
        return None
    return {"run": run.pk, "state": run.state}


@shared_task
def recompute_profiles_everywhere() -> int:
    return fan_out(recompute_profiles, "beat")
