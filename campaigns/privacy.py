"""Coupons and points held about a member, for the export and erasure of profiles.privacy."""

from __future__ import annotations

from typing import Any

from campaigns.models import ClaimCounter, Coupon, PointsEntry
from profiles.models import Member


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def export_coupons(member: Member) -> list[dict[str, Any]]:
    return [
        {"code": c.code, "template": c.template.name, "kind": c.template.kind, "state": c.state,
         "channel": c.channel, "claimed_at": _iso(c.claimed_at), "valid_from": _iso(c.valid_from),
         "valid_until": _iso(c.valid_until), "used_at": _iso(c.used_at), "order_ref": c.order_ref}
        for c in Coupon.objects.filter(member=member).select_related("template").order_by("claimed_at", "id")
    ]


def export_claim_counts(member: Member) -> list[dict[str, Any]]:
    return [{"template": name, "count": count} for name, count in
            ClaimCounter.objects.filter(member=member).order_by("id").values_list("template__name", "count")]


def export_points(member: Member) -> list[dict[str, Any]]:
    return [
        {"delta": e.delta, "balance_after": e.balance_after, "reason": e.reason, "ref": e.ref,
         "amount_fen": e.amount_fen, "note": e.note, "at": _iso(e.created_at)}
        for e in PointsEntry.objects.filter(member=member).order_by("id")
    ]


def erase_coupons(member: Member) -> None:
    # A used coupon stays (its order is kept, anonymised, for the merchant's accounts); it points
    # at the erased member's tombstone and holds nothing personal.
    Coupon.objects.filter(member=member).exclude(state=Coupon.State.USED).delete()


def erase_claim_counts(member: Member) -> None:
    ClaimCounter.objects.filter(member=member).delete()


def erase_points(member: Member) -> None:
    PointsEntry.objects.filter(member=member).delete()
    Member.objects.filter(pk=member.pk).update(points=0, tier="")


def register() -> None:
    from profiles.privacy import register_member_data

    register_member_data(Coupon, export=export_coupons, erase=erase_coupons, section="coupons")
    register_member_data(ClaimCounter, export=export_claim_counts, erase=erase_claim_counts,
                         section="coupon_claim_counts")
    register_member_data(PointsEntry, export=export_points, erase=erase_points, section="points_ledger")
