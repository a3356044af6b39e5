"""Named reads of members and what is held about them."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from profiles import privacy
from profiles.computation.queries import profile_summary
from profiles.models import Member


class MemberNotFound(Exception):
    """No such member in the tenant in context: missing, erased or another tenant's alike."""


def get_member(member_id: int) -> Member:
    """The active (not erased) member of the tenant in context."""
    member = Member.objects.filter(pk=member_id, erased_at__isnull=True).first()
    if member is None:
        raise MemberNotFound(member_id)
    return member


def consent_of(member: Member) -> dict[str, dict[str, Any]]:
    return {
        "marketing": {"granted": member.consent_marketing, "updated_at": member.consent_marketing_at},
        "profiling": {"granted": member.consent_profiling, "updated_at": member.consent_profiling_at},
    }


def member_summary(member: Member) -> dict[str, Any]:
    """What ``GET /api/v1/me`` shows. ``profile`` stays null until profiles have been computed."""
    return {
        "id": member.pk,
        "openid": member.openid,
        "nickname": member.nickname,
        "avatar_url": member.avatar_url,
        "tier": member.tier,
        "points": int(member.points),
        "consent": consent_of(member),
        "first_seen_at": member.first_seen_at,
        "last_seen_at": member.last_seen_at,
        "profile": profile_summary(member),
    }


def export_member(member: Member) -> dict[str, Any]:
    """Everything held about the member: the member row itself, then each registered table."""
    return {
        "exported_at": timezone.now().isoformat(),
        "member": {
            "id": member.pk,
            "openid": member.openid,
            "unionid": member.unionid,
            "nickname": member.nickname,
            "avatar_url": member.avatar_url,
            "gender": member.gender,
            "birthday": member.birthday.isoformat() if member.birthday else None,
            "city": member.city,
            "phone": member.phone,
            "tier": member.tier,
            "points": int(member.points),
            "consent": {
                kind: {"granted": value["granted"],
                       "updated_at": value["updated_at"].isoformat() if value["updated_at"] else None}
                for kind, value in consent_of(member).items()
            },
            "first_seen_at": member.first_seen_at.isoformat(),
            "last_seen_at": member.last_seen_at.isoformat() if member.last_seen_at else None,
        },
        **privacy.export_sections(member),
    }
