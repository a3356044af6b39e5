"""One tenant's profile computation, end to end: read, compute, write, record the run.

``recompute(tenant)`` is what the Celery task, the ``recompute_profiles`` command and the console
button (through the task) all run. One run at a time per tenant: on PostgreSQL a transaction-level
advisory lock (released by the commit or by a crash, never left behind), elsewhere a cache lock.
A second run that finds the lock taken does nothing and says so.

Privacy: members who refused profiling get a profile row with the plain purchase facts only
(``profiled`` false) and no cluster, interest, propensity, predicted spend or recommendation; their
behaviour is also left out of everything learnt from the population (clusters, models, item pairs,
popularity). Erased members are skipped, and their old rows go with the rewrite.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime

import numpy as np
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from profiles.computation import (
    clusters,
    copurchase,
    features,
    interests,
    propensity,
    recommend,
    rfm,
    spend,
    store,
)
from profiles.models import ItemAffinity, MemberProfile, ProfileRun, Recommendation
from tenants.context import tenant_context
from tenants.models import Tenant

logger = logging.getLogger("jingzhun.profiles")

LOCK_NAMESPACE = 0x4A5A5052  # "JZPR": the advisory-lock space of profile runs
CACHE_LOCK_SECONDS = 3 * 3600

Progress = Callable[[str, int, int], None]  # (step, done, total)


class Busy(Exception):
    """Another run holds this tenant's lock."""


@contextmanager
def _one_at_a_time(tenant: Tenant):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, tenant.pk])
            if not cursor.fetchone()[0]:
                raise Busy(tenant.pk)
        yield
        return
    key = f"profiles:recompute:{tenant.pk}"
    if not cache.add(key, "1", CACHE_LOCK_SECONDS):
        raise Busy(tenant.pk)
    try:
        yield
    finally:
        cache.delete(key)


def recompute(tenant: Tenant, *, trigger: str = "command", now: datetime | None = None,
              progress: Progress | None = None) -> ProfileRun | None:
    """Run the computation for ``tenant`` as of ``now`` (default: now). None when another run is busy.

    A failure is recorded on the run row (state ``failed`` with the error) and nothing else changes.
    """
    as_of = now or timezone.now()
    with tenant_context(tenant):
        try:
            with _one_at_a_time(tenant):
                run = ProfileRun.objects.create(trigger=trigger[:16], started_at=timezone.now())
                try:
                    with transaction.atomic():
                        stats = compute_and_write(as_of, progress=progress)
                except Exception as exc:
                    logger.exception("profile run %s of tenant %s failed", run.pk, tenant.pk)
                    run.state = ProfileRun.State.FAILED
                    run.error = f"{type(exc).__name__}: {exc}"[:2000]
                else:
                    run.state = ProfileRun.State.SUCCEEDED
                    run.stats = stats
                run.finished_at = timezone.now()
                run.save(update_fields=["state", "error", "stats", "finished_at"])
                return run
        except Busy:
            logger.info("tenant %s: a profile run is already in progress; skipped", tenant.pk)
            return None


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._mark, 3)
        self._mark = now


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def compute_and_write(as_of: datetime, *, progress: Progress | None = None) -> dict:
    """The whole computation for the tenant in context; returns the run's stats."""
    started = time.monotonic()
    clock = _Clock()
    step = progress or (lambda name, done, total: None)
    step("read", 0, 1)
    f = features.read_features(as_of)
    clock.seconds.update({k: round(v, 3) for k, v in f.seconds.items()})
    clock.lap("read")
    step("read", 1, 1)
    n = f.n
    allowed = f.profiling
    now_epoch = as_of.timestamp()

    # RFM: facts for everyone, scores and segments only with consent.
    r = rfm.compute(f.now.last_purchase, f.now.frequency, f.now.monetary, now_epoch, allowed)
    clock.lap("rfm")

    # Lines of members who refused profiling teach nothing about anyone.
    keep = allowed[f.lines.member] if len(f.lines.member) else np.zeros(0, dtype=bool)
    lines = features.Lines(f.lines.member[keep], f.lines.item[keep], f.lines.ts[keep], f.lines.qty[keep])

    # Interests and clusters.
    order, _share = interests.top_categories(f.interest)
    tag_lists = interests.tags(order, f.catalogue.category_names)
    rows = np.flatnonzero(allowed)
    behaviour = behaviour_of(f, r, rows)
    grouping = clusters.cluster(behaviour, f.catalogue.category_names)
    clock.lap("clusters")
    step("model", 0, 1)

    # Propensity and spend: learnt from consenting members, applied to them.
    split = propensity.time_split(f.before, f.now, f.first_seen, allowed)
    x_now = propensity.activity_matrix(f.now, f.first_seen)[rows]
    prop = propensity.fit_and_score(split, x_now)
    clock.lap("propensity")
    money = spend.fit_and_predict(split, x_now, prop.scores)
    clock.lap("spend")
    step("model", 1, 1)

    # Item pairs and recommendations.
    aff = copurchase.compute(lines, len(f.catalogue.item_ids))
    clock.lap("copurchase")
    recs = recommend.recommend(rows, lines, f.catalogue, aff, f.interest, f.interest_bought, now_epoch,
                               progress=(lambda done: step("recommend", done, len(rows))) if progress else None)
    clock.lap("recommend")

    # Write.
    computed_at = timezone.now()
    cluster_of = np.full(n, -1, dtype=np.int32)
    cluster_of[rows] = grouping.labels
    cluster_name = np.full(n, "", dtype=object)
    cluster_name[rows] = grouping.names
    score_of = np.full(n, np.nan)
    score_of[rows] = prop.scores
    spend_of = np.full(n, -1, dtype=np.int64)
    spend_of[rows] = money.fen
    last_purchase = _datetimes(f.now.last_purchase)
    last_event = _datetimes(f.now.last_event)

    def profile_rows():
        for i in range(n):
            consented = bool(allowed[i])
            recency = r.recency_days[i]
            yield (
                int(f.member_ids[i]), consented,
                None if np.isnan(recency) else int(recency), int(f.now.frequency[i]), int(f.now.monetary[i]),
                last_purchase[i], last_event[i], int(f.now.events_30d[i]),
                int(r.r[i]) if consented and r.r[i] else None, int(r.f[i]) if consented and r.f[i] else None,
                int(r.m[i]) if consented and r.m[i] else None, r.segment[i] if consented else "",
                int(cluster_of[i]) if consented and cluster_of[i] >= 0 else None,
                cluster_name[i] if consented else "",
                tag_lists[i] if consented else [],
                _round(score_of[i]) if consented else None,
                int(spend_of[i]) if consented else None,
                computed_at,
            )

    step("write", 0, 3)
    profiles_written = store.replace_rows(MemberProfile, [
        "member_id", "profiled", "recency_days", "frequency", "monetary_fen", "last_purchase_at", "last_active_at",
        "events_30d", "r_score", "f_score", "m_score", "rfm_segment", "cluster", "cluster_label", "interest_tags",
        "propensity", "predicted_spend_fen", "computed_at"], profile_rows())
    step("write", 1, 3)
    item_ids = f.catalogue.item_ids
    store.replace_rows(ItemAffinity, [
        "item_a_id", "item_b_id", "pair_count", "support", "confidence", "lift", "strength", "computed_at"],
        ((int(item_ids[a]), int(item_ids[b]), int(c), _round(s, 6), _round(cf), _round(lf), _round(st), computed_at)
         for a, b, c, s, cf, lf, st in zip(aff.item_a, aff.item_b, aff.pair_count, aff.support, aff.confidence,
                                          aff.lift, aff.strength, strict=True)))
    step("write", 2, 3)
    store.replace_rows(Recommendation, [
        "member_id", "item_id", "rank", "score", "source", "reason", "computed_at"],
        ((int(f.member_ids[m]), int(item_ids[i]), int(k), _round(s), recommend.SOURCES[src], reason[:200],
          computed_at)
         for m, i, k, s, src, reason in zip(recs.member.tolist(), recs.item.tolist(), recs.rank.tolist(),
                                           recs.score.tolist(), recs.source.tolist(), recs.reason, strict=True)))
    step("write", 3, 3)
    clock.lap("write")

    return _stats(f, r, grouping, prop, money, aff, recs, rows, lines, profiles_written, clock, started)


def behaviour_of(f: features.Features, r: rfm.RFM, rows: np.ndarray) -> clusters.Behaviour:
    """The clustering inputs of members ``rows``, in plain units."""
    now_epoch = f.as_of.timestamp()
    with np.errstate(invalid="ignore", divide="ignore"):
        promo_share = np.where(f.now.frequency > 0, f.now.promo_purchases / np.maximum(f.now.frequency, 1), 0.0)
    tenure = np.maximum((now_epoch - f.first_seen[rows]) / features.DAY, 0)
    return clusters.Behaviour(
        recency_days=r.recency_days[rows], frequency=f.now.frequency[rows].astype(np.float64),
        monetary=f.now.monetary[rows].astype(np.float64), promo_share=promo_share[rows],
        events_90d=f.now.events_90d[rows].astype(np.float64), tenure_days=tenure,
        idle_days=np.nan_to_num((now_epoch - f.now.last_event[rows]) / features.DAY, nan=tenure),
        category_share=interests.shares(f.interest[rows]),
    )


def _datetimes(epochs: np.ndarray) -> list[datetime | None]:
    from datetime import UTC

    return [None if np.isnan(t) else datetime.fromtimestamp(t, UTC) for t in epochs.tolist()]


def _stats(f, r, grouping, prop, money, aff, recs, rows, lines, profiles_written, clock, started) -> dict:
    allowed = f.profiling
    segments = Counter(s for s in r.segment.tolist() if s)
    grid = [[0] * 5 for _ in range(5)]
    scored = (r.r > 0) & (r.f > 0)
    for ri, fi in zip(r.r[scored].tolist(), r.f[scored].tolist(), strict=True):
        grid[5 - ri][fi - 1] += 1
    cat_names = f.catalogue.category_names
    item_names = f.catalogue.item_names
    top = np.argsort(-aff.strength, kind="stable")[:20] if len(aff) else []
    return {
        "as_of": f.as_of.isoformat(),
        "members": int(f.n),
        "profiled": int(allowed.sum()),
        "refused": int((~allowed).sum()),
        "buyers": int((f.now.frequency > 0).sum()),
        "events": int(f.now.events.sum()),
        "purchase_lines": int(len(f.lines.member)),
        "categories": len(cat_names),
        "items": len(item_names),
        "rfm": dict(sorted(segments.items())),
        "rfm_grid": grid,
        "clusters": {
            "k": grouping.k,
            "silhouette": _round(grouping.silhouette),
            "silhouettes": {str(k): _round(v) for k, v in grouping.silhouettes.items()},
            "items": [{"cluster": c.cluster, "label": c.label, "size": c.size, "description": c.description,
                       "top_categories": c.top_categories,
                       "centroid": {k: _round(v, 2) for k, v in c.centroid.items()}} for c in grouping.clusters],
        },
        "propensity": {
            "model": prop.model, "auc": _round(prop.auc), "train_rows": prop.train_rows,
            "positives": prop.positives, "base_rate": _round(prop.base_rate),
            "mean": _round(prop.scores.mean()) if len(prop.scores) else None,
        },
        "spend": {
            "model": money.model, "mae_fen_30d": _round(money.mae_fen, 1), "total_ratio": _round(money.total_ratio),
            "predicted_90d_total_fen": int(money.fen.sum()) if len(money.fen) else 0,
        },
        "affinities": {
            "pairs": len(aff), "buyers": int(aff.buyers), "window_days": copurchase.WINDOW_DAYS,
            "top": [{"a": item_names[aff.item_a[j]], "b": item_names[aff.item_b[j]],
                     "members": int(aff.pair_count[j]), "confidence": _round(aff.confidence[j]),
                     "lift": _round(aff.lift[j], 2), "strength": _round(aff.strength[j], 2)} for j in top],
        },
        "recommendations": {
            "rows": len(recs), "members": int(len(np.unique(recs.member))) if len(recs) else 0,
            "by_source": dict(Counter(recommend.SOURCES[s] for s in recs.source.tolist())),
        },
        "profiles_written": profiles_written,
        "seconds": clock.seconds,
        "total_seconds": round(time.monotonic() - started, 3),
    }
