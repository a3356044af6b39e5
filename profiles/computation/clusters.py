"""Behavioural clusters: K-Means on standardised RFM, engagement and category-share features.

k is chosen by the silhouette score over ``K_RANGE`` on a sample; the final model is fitted on a
(larger) sample and assigns everyone, so a million members cost seconds. Clusters are numbered by
spend (0 spends most) and named in words from their centroids in plain units (高价值常客, 价格敏感,
流失风险, 新客, 只逛不买…), each with a one-line description a merchant can check against the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.utils.translation import gettext as _
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

K_RANGE = range(3, 9)
SELECT_SAMPLE = 8000  # rows to choose k on (silhouette is quadratic in the sample)
FIT_SAMPLE = 200_000  # rows the final model is fitted on
# The category shares are one block of features: together they weigh as much as this many
# behavioural features, so that taste refines the behavioural groups instead of replacing them.
CATEGORY_BLOCK_WEIGHT = 0.25
NEW_TENURE_DAYS = 30
LAPSED_RECENCY_DAYS = 45


@dataclass
class ClusterInfo:
    cluster: int
    label: str
    size: int
    description: str
    centroid: dict[str, float]
    top_categories: list[str]


@dataclass
class Clustering:
    labels: np.ndarray  # per member, -1 when not clustered
    names: np.ndarray  # per member, "" when not clustered
    k: int
    silhouette: float | None
    silhouettes: dict[int, float]
    clusters: list[ClusterInfo] = field(default_factory=list)


@dataclass
class Behaviour:
    """The plain-unit facts the clusters are built from and named by (one row per member)."""

    recency_days: np.ndarray  # NaN: never bought
    frequency: np.ndarray
    monetary: np.ndarray
    promo_share: np.ndarray
    events_90d: np.ndarray
    tenure_days: np.ndarray
    idle_days: np.ndarray  # since the last event of any kind
    category_share: np.ndarray  # (members, categories), rows sum to 1 (or 0)


def matrix(b: Behaviour) -> np.ndarray:
    never = np.isnan(b.recency_days)
    cap = max(float(np.nanmax(b.recency_days)) if (~never).any() else 0.0, 90.0) * 1.5
    recency = np.where(never, cap, b.recency_days)
    behaviour = np.column_stack([
        np.log1p(recency),
        np.log1p(b.frequency),
        np.log1p(b.monetary / 100.0),
        b.promo_share,
        np.log1p(b.events_90d),
        np.log1p(b.tenure_days),
        np.log1p(b.idle_days),
        (b.frequency > 0).astype(np.float64),
    ])
    x = StandardScaler().fit_transform(behaviour)
    if b.category_share.shape[1]:
        shares = StandardScaler().fit_transform(b.category_share.astype(np.float64))
        shares *= CATEGORY_BLOCK_WEIGHT / np.sqrt(b.category_share.shape[1])
        x = np.hstack([x, shares])
    return np.nan_to_num(x)


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))


def cluster(b: Behaviour, category_names: list[str], *, seed: int = 0) -> Clustering:
    n = len(b.frequency)
    if n < K_RANGE.start * 3:
        return Clustering(np.full(n, -1, dtype=np.int16), np.full(n, "", dtype=object), 0, None, {})
    x = matrix(b)
    rng = np.random.default_rng(seed)
    pick = _sample(n, SELECT_SAMPLE, rng)
    scores: dict[int, float] = {}
    for k in K_RANGE:
        if k >= len(pick):
            break
        model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x[pick])
        if len(set(model.labels_)) < 2:
            continue
        scores[k] = float(silhouette_score(x[pick], model.labels_, random_state=seed))
    k = max(scores, key=lambda key: (round(scores[key], 3), -key)) if scores else K_RANGE.start
    fit = _sample(n, FIT_SAMPLE, rng)
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x[fit])
    raw = model.predict(x)
    # Number clusters by spend, most first, so ids read the same way run after run.
    spend = np.array([b.monetary[raw == c].mean() if (raw == c).any() else -1 for c in range(k)])
    order = np.argsort(-spend, kind="stable")
    renumber = np.empty(k, dtype=np.int16)
    renumber[order] = np.arange(k)
    labels = renumber[raw]
    infos = describe(b, labels, k, category_names)
    names = np.array([info.label for info in infos], dtype=object)[labels]
    return Clustering(labels, names, k, scores.get(k), scores, infos)


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if len(values) else None


def describe(b: Behaviour, labels: np.ndarray, k: int, category_names: list[str]) -> list[ClusterInfo]:
    buyers_all = b.frequency > 0
    mean_spend_buyers = float(b.monetary[buyers_all].mean()) if buyers_all.any() else 0.0
    mean_freq_buyers = float(b.frequency[buyers_all].mean()) if buyers_all.any() else 0.0
    infos: list[ClusterInfo] = []
    for c in range(k):
        inside = labels == c
        size = int(inside.sum())
        buyers = inside & buyers_all
        centroid = {
            "buyer_share": float(buyers.sum() / size) if size else 0.0,
            "frequency": float(b.frequency[inside].mean()) if size else 0.0,
            "monetary_fen": float(b.monetary[inside].mean()) if size else 0.0,
            "recency_days": _median(b.recency_days[buyers]),
            "promo_share": float(b.promo_share[buyers].mean()) if buyers.any() else 0.0,
            "tenure_days": _median(b.tenure_days[inside]),
            "events_90d": float(b.events_90d[inside].mean()) if size else 0.0,
        }
        shares = b.category_share[inside].mean(axis=0) if size and b.category_share.shape[1] else np.zeros(0)
        top = [category_names[j] for j in np.argsort(-shares)[:2] if shares[j] > 0.05]
        label = _name(centroid, mean_spend_buyers, mean_freq_buyers)
        infos.append(ClusterInfo(c, label, size, "", centroid, top))
    _disambiguate(infos)
    for info in infos:
        info.description = _description(info)
    return infos


def _name(c: dict, mean_spend: float, mean_freq: float) -> str:
    if c["tenure_days"] is not None and c["tenure_days"] <= NEW_TENURE_DAYS:
        return _("新客")
    if c["buyer_share"] < 0.25:
        return _("只逛不买")
    if c["promo_share"] >= 0.5:
        return _("价格敏感")
    if c["recency_days"] is not None and c["recency_days"] >= LAPSED_RECENCY_DAYS:
        return _("流失风险")
    buyers_spend = c["monetary_fen"] / max(c["buyer_share"], 1e-9)
    if buyers_spend >= 1.5 * mean_spend and c["frequency"] >= mean_freq:
        return _("高价值常客")
    return _("稳定客户")


def _disambiguate(infos: list[ClusterInfo]) -> None:
    """Two clusters with one name get a qualifier: ordered or not, else their favourite category."""
    by_label: dict[str, list[ClusterInfo]] = {}
    for info in infos:
        by_label.setdefault(info.label, []).append(info)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        shares = [i.centroid["buyer_share"] for i in same]
        if max(shares) - min(shares) >= 0.5:
            for info in same:
                info.label = f"{label}·" + (_("已下单") if info.centroid["buyer_share"] >= 0.5 else _("未下单"))
        else:
            for info in same:
                if info.top_categories:
                    info.label = f"{label}·{info.top_categories[0]}"
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.label] = counts.get(info.label, 0) + 1
        if counts[info.label] > 1:
            info.label = f"{info.label}{counts[info.label]}"


def _description(info: ClusterInfo) -> str:
    c = info.centroid
    parts = [_("%(p).0f%% 有购买") % {"p": c["buyer_share"] * 100},
             _("人均 %(f).1f 单、¥%(m).0f") % {"f": c["frequency"], "m": c["monetary_fen"] / 100}]
    if c["recency_days"] is not None:
        parts.append(_("最近购买中位 %(d).0f 天前") % {"d": c["recency_days"]})
    if c["buyer_share"] > 0:
        parts.append(_("会员日或用券订单占 %(p).0f%%") % {"p": c["promo_share"] * 100})
    if c["tenure_days"] is not None:
        parts.append(_("成为会员中位 %(d).0f 天") % {"d": c["tenure_days"]})
    parts.append(_("近 90 天人均 %(e).0f 次互动") % {"e": c["events_90d"]})
    if info.top_categories:
        parts.append(_("偏好 %(c)s") % {"c": "、".join(info.top_categories)})
    return "；".join(parts)
