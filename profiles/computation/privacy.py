"""Computed profile rows in the member's export, and gone with their erasure (PIPL)."""

from __future__ import annotations

from typing import Any

from profiles.models import Member, MemberProfile, Recommendation
from profiles.privacy import register_member_data


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def export_profile(member: Member) -> dict[str, Any] | None:
    p = MemberProfile.objects.filter(member=member).first()
    if p is None:
        return None
    return {
        "profiled": p.profiled, "recency_days": p.recency_days, "frequency": p.frequency,
        "monetary_fen": p.monetary_fen, "last_purchase_at": _iso(p.last_purchase_at),
        "last_active_at": _iso(p.last_active_at), "events_30d": p.events_30d,
        "rfm": {"r": p.r_score, "f": p.f_score, "m": p.m_score, "segment": p.rfm_segment or None},
        "cluster": p.cluster, "cluster_label": p.cluster_label or None, "interest_tags": p.interest_tags,
        "propensity_30d": p.propensity, "predicted_spend_90d_fen": p.predicted_spend_fen,
        "computed_at": _iso(p.computed_at),
    }


def export_recommendations(member: Member) -> list[dict[str, Any]]:
    return [
        {"rank": rank, "sku": sku, "name": name, "score": score, "reason": reason, "computed_at": _iso(at)}
        for rank, sku, name, score, reason, at in Recommendation.objects.filter(member=member).order_by("rank")
        .values_list("rank", "item__sku", "item__name", "score", "reason", "computed_at")
    ]


def _erase(model):
    def erase(member: Member) -> None:
        model.objects.filter(member=member).delete()

    return erase


register_member_data(MemberProfile, export=export_profile, erase=_erase(MemberProfile), section="profile")
register_member_data(Recommendation, export=export_recommendations, erase=_erase(Recommendation),
                     section="recommendations")
