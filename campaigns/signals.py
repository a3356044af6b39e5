"""What campaigns does when other apps' rows change (connected in CampaignsConfig.ready)."""

from __future__ import annotations

from django.db import transaction

from tenants.context import current_tenant


def welcome_new_member(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """A member's first login creates the member: grant the tenant's new-member coupon, if set.

    After commit, so a failed login never leaves a coupon behind, and in the same tenant context
    the login ran in. Bulk-created members (imports, seed data) send no signal and get none.
    """
    if not created or raw:
        return
    tenant = current_tenant()
    if tenant is None or tenant.pk != instance.tenant_id:
        return
    from campaigns.actions import grant_new_member_coupon

    transaction.on_commit(lambda: grant_new_member_coupon(tenant, instance))
