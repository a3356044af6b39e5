"""Named reads for the console's settings pages. Each takes the tenant resolved at the edge."""

from __future__ import annotations

from django.db.models import Case, IntegerField, QuerySet, Value, When

from tenants.context import tenant_context
from tenants.models import AuditEvent, MiniProgramApp, PayAccount, StaffMembership, Tenant


def staff_of(tenant: Tenant) -> QuerySet[StaffMembership]:
    """Active first, then by rank (owners first), then by name."""
    rank = Case(*[When(role=role, then=Value(i)) for i, role in enumerate(StaffMembership.Role.values)],
                output_field=IntegerField())
    return (StaffMembership.objects.select_related("user").filter(tenant=tenant)
            .order_by("-is_active", rank, "user__username"))


def get_membership(tenant: Tenant, membership_id: int) -> StaffMembership:
    """Raises StaffMembership.DoesNotExist alike for a missing id and for another tenant's."""
    return StaffMembership.objects.select_related("user").get(pk=membership_id, tenant=tenant)


def active_staff_count(tenant: Tenant) -> int:
    return StaffMembership.objects.filter(tenant=tenant, is_active=True).count()


def mini_program_of(tenant: Tenant) -> MiniProgramApp | None:
    return MiniProgramApp.objects.filter(tenant=tenant).first()


def pay_account_of(tenant: Tenant) -> PayAccount | None:
    return PayAccount.objects.filter(tenant=tenant).first()


def audit_events(tenant: Tenant) -> QuerySet[AuditEvent]:
    """Newest first; evaluate it inside the tenant's context (the console middleware opens it)."""
    with tenant_context(tenant):
        return AuditEvent.objects.select_related("actor").order_by("-created_at", "-id")
