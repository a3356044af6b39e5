"""What each staff role may do. The console and the API ask these, never compare role names."""

from __future__ import annotations

from tenants.models import StaffMembership

Role = StaffMembership.Role

_CHANGE = {Role.OWNER, Role.MANAGER, Role.OPERATOR}
_MANAGE = {Role.OWNER, Role.MANAGER}


def can_change(role: str) -> bool:
    """Anything that writes. An analyst reads only."""
    return role in _CHANGE


def can_refund(role: str) -> bool:
    return role in _MANAGE


def can_manage_credentials(role: str) -> bool:
    return role == Role.OWNER


def can_manage_staff(role: str) -> bool:
    return role == Role.OWNER
