"""Named reads of computed profiles: a member's summary and recommendations, the tenant's overview.

Consent is checked again at read time: a member who withdrew profiling after the last run sees no
segment, cluster, interests or recommendations from that run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profiles.computation.rfm import GRID, SEGMENTS
from profiles.models import ItemAffinity, Member, MemberProfile, ProfileRun, Recommendation
from tenants.context import current_tenant, tenant_context

API_LIMIT = 10


def get_profile(member: Member) -> MemberProfile | None:
    return MemberProfile.objects.filter(member=member).first()


def segment_label(key: str) -> str:
    return str(SEGMENTS.get(key, key)) if key else ""


def profile_summary(member: Member) -> dict[str, Any] | None:
    """The ``profile`` of ``GET /api/v1/me``: null until the first run has seen the member.

    Also answered with the sign-in response, which is built after the login's tenant context closed.
    """
    active = current_tenant()
    if active is not None and active.pk == member.tenant_id:
        p = get_profile(member)
    else:
        with tenant_context(member.tenant):
            p = get_profile(member)
    if p is None:
        return None
    personal = p.profiled and member.consent_profiling
    return {
        "profiled": personal,
        "rfm_segment": p.rfm_segment or None if personal else None,
        "rfm_segment_label": segment_label(p.rfm_segment) or None if personal else None,
        "cluster_label": p.cluster_label or None if personal else None,
        "interest_tags": list(p.interest_tags) if personal else [],
        "computed_at": p.computed_at,
    }


def recommendations_for(member: Member, limit: int = API_LIMIT) -> list[dict[str, Any]]:
    """What ``GET /api/v1/me/recommendations`` answers; items taken off sale since the run are left out."""
    if not member.consent_profiling or member.erased_at is not None:
        return []
    rows = (Recommendation.objects.filter(member=member, item__active=True).order_by("rank")
            .values_list("item__sku", "item__name", "item__category__name", "item__price_fen", "score", "reason",
                         "source")[:limit])
    return [
        {"item": {"sku": sku, "name": name, "category": category, "price_fen": price}, "score": score,
         "reason": reason, "source": source}
        for sku, name, category, price, score, reason, source in rows
    ]


@dataclass
class Card:
    """The member page's profile card."""

    profile: MemberProfile | None
    personal: bool
    segment_label: str
    recommendations: list[Recommendation]


def profile_card(member: Member) -> Card:
    p = get_profile(member)
    personal = bool(p and p.profiled and member.consent_profiling)
    recs = list(Recommendation.objects.filter(member=member).select_related("item").order_by("rank")) if personal else []
    return Card(p, personal, segment_label(p.rfm_segment) if p and personal else "", recs)


def last_runs(limit: int = 10) -> list[ProfileRun]:
    return list(ProfileRun.objects.order_by("-started_at", "-pk")[:limit])


def last_successful_run() -> ProfileRun | None:
    return ProfileRun.objects.filter(state=ProfileRun.State.SUCCEEDED).order_by("-started_at", "-pk").first()


def rfm_grid(run: ProfileRun | None) -> list[dict[str, Any]]:
    """Rows R 5→1, each with five cells F 1→5: the segment and how many members fall in it."""
    counts = (run.stats.get("rfm_grid") if run else None) or [[0] * 5 for _ in range(5)]
    return [
        {"r": 5 - i, "cells": [{"f": j + 1, "segment": GRID[i][j], "label": segment_label(GRID[i][j]),
                                "count": counts[i][j]} for j in range(5)]}
        for i in range(5)
    ]


def top_affinities(limit: int = 15) -> list[ItemAffinity]:
    return list(ItemAffinity.objects.select_related("item_a", "item_b").order_by("-strength", "-pair_count",
                                                                                  "pk")[:limit])
