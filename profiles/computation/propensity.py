"""Purchase propensity for the next 30 days, learnt on a time split of the tenant's own history.

Training rows: members who already existed at ``T − 30d``, described by their features as of then;
label: bought in ``(T − 30d, T]``. A quarter of them is held out to report the AUC the merchant can
trust. The fitted model then scores everyone on their features as of ``T``. Gradient boosting
(scikit-learn's histogram version) because "recently active and used to buy" is not linear, it takes
missing values (never bought) as they are, and trains on a million rows in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from profiles.computation.features import DAY, Activity

MIN_CLASS = 10  # fewer buyers (or non-buyers) than this in the training window: no model, a heuristic
HOLDOUT = 0.25

FEATURE_NAMES = ["recency_days", "frequency", "monetary_yuan", "promo_share", "events", "events_7d",
                 "events_30d", "events_90d", "carts_30d", "idle_days", "tenure_days", "customer_days"]


def activity_matrix(a: Activity, first_seen: np.ndarray) -> np.ndarray:
    t = a.as_of_epoch
    with np.errstate(invalid="ignore", divide="ignore"):
        promo = np.where(a.frequency > 0, a.promo_purchases / np.maximum(a.frequency, 1), np.nan)
    return np.column_stack([
        (t - a.last_purchase) / DAY,
        a.frequency, a.monetary / 100.0, promo, a.events, a.events_7d, a.events_30d, a.events_90d, a.carts_30d,
        (t - a.last_event) / DAY,
        (t - first_seen) / DAY,
        (t - a.first_purchase) / DAY,
    ]).astype(np.float64)


@dataclass
class TimeSplit:
    """Rows of the training window and what happened in the horizon after it."""

    x: np.ndarray
    bought: np.ndarray
    spend: np.ndarray  # fen spent in the horizon


def time_split(before: Activity, now: Activity, first_seen: np.ndarray, rows: np.ndarray) -> TimeSplit:
    """``rows``: who may be used (consent); of those, only members who existed at the cut-off."""
    existed = rows & (first_seen < before.as_of_epoch)
    x = activity_matrix(before, first_seen)[existed]
    bought = (now.frequency - before.frequency)[existed] > 0
    spend = (now.monetary - before.monetary)[existed].astype(np.float64)
    return TimeSplit(x, bought, spend)


@dataclass
class Propensity:
    scores: np.ndarray  # for the rows asked, 0–1
    model: str
    auc: float | None
    train_rows: int
    positives: int
    base_rate: float | None


def heuristic(x: np.ndarray) -> np.ndarray:
    """Without enough history to learn from: recent, frequent buyers first."""
    recency = np.nan_to_num(x[:, 0], nan=365.0)
    frequency = x[:, 1]
    return np.clip((1.0 / (1.0 + recency / 30.0)) * np.minimum(frequency, 5) / 5.0, 0, 1)


def fit_and_score(split: TimeSplit, x_now: np.ndarray, *, seed: int = 0) -> Propensity:
    positives = int(split.bought.sum())
    negatives = len(split.bought) - positives
    base = positives / len(split.bought) if len(split.bought) else None
    if positives < MIN_CLASS or negatives < MIN_CLASS:
        return Propensity(heuristic(x_now), "heuristic", None, len(split.bought), positives, base)
    x_train, x_test, y_train, y_test = train_test_split(split.x, split.bought, test_size=HOLDOUT,
                                                        random_state=seed, stratify=split.bought)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08, max_leaf_nodes=15,
                                           min_samples_leaf=20, l2_regularization=1.0, random_state=seed)
    model.fit(x_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])) if len(set(y_test)) == 2 else None
    scores = model.predict_proba(x_now)[:, 1] if len(x_now) else np.zeros(0)
    return Propensity(scores, "gradient_boosting", auc, len(split.bought), positives, base)
