"""RFM: recency, frequency and monetary value, scored 1–5 against the tenant's other buyers.

Scores are percentile ranks among members who have bought (ties share a score), so a 5 means "in
the top fifth of this merchant's buyers", whatever the merchant's scale. Members who never bought
get no scores and the segment ``never_bought``. The segment names the classic R×F grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.utils.translation import gettext_lazy as _

# (segment, label) in the order the console lists them.
SEGMENTS: dict[str, object] = {
    "champions": _("冠军客户"),
    "loyal": _("忠诚客户"),
    "potential_loyalist": _("潜力客户"),
    "new_customer": _("新客户"),
    "promising": _("有潜力"),
    "need_attention": _("需要关注"),
    "about_to_sleep": _("即将沉睡"),
    "at_risk": _("高危流失"),
    "cannot_lose": _("不能失去"),
    "hibernating": _("沉睡客户"),
    "never_bought": _("未购买"),
}


def segment_for(r: int, f: int) -> str:
    """The R×F grid (rows R 1–5, columns F 1–5) of the usual RFM segmentation."""
    if r >= 5 and f >= 4 or r == 4 and f == 5:
        return "champions"
    if r >= 3 and f >= 4:
        return "loyal"
    if r >= 4 and f in (2, 3):
        return "potential_loyalist"
    if r == 5 and f == 1:
        return "new_customer"
    if r == 4 and f == 1:
        return "promising"
    if r == 3 and f == 3:
        return "need_attention"
    if r == 3 and f <= 2:
        return "about_to_sleep"
    if r <= 2 and f == 5:
        return "cannot_lose"
    if r <= 2 and f >= 3:
        return "at_risk"
    return "hibernating"


GRID = [[segment_for(r, f) for f in range(1, 6)] for r in range(5, 0, -1)]  # rows R 5→1


def quintile_scores(values: np.ndarray) -> np.ndarray:
    """1–5 by mid-rank percentile; equal values get equal scores."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")
    upto = np.searchsorted(ordered, values, side="right")
    pct = (below + upto) / 2.0 / n
    return np.clip(np.floor(pct * 5).astype(np.int16) + 1, 1, 5)


@dataclass
class RFM:
    recency_days: np.ndarray  # float, NaN when never bought
    frequency: np.ndarray
    monetary: np.ndarray
    r: np.ndarray  # 0 when not scored
    f: np.ndarray
    m: np.ndarray
    segment: np.ndarray  # object array of segment keys ("" when not scored)


def compute(last_purchase: np.ndarray, frequency: np.ndarray, monetary: np.ndarray, as_of_epoch: float,
            scored: np.ndarray) -> RFM:
    """``scored``: who may be scored (consent to profiling); others keep only the plain facts."""
    n = len(frequency)
    recency = (as_of_epoch - last_purchase) / 86400.0
    r = np.zeros(n, dtype=np.int16)
    f = np.zeros(n, dtype=np.int16)
    m = np.zeros(n, dtype=np.int16)
    buyers = scored & (frequency > 0)
    if buyers.any():
        r[buyers] = quintile_scores(-recency[buyers])
        f[buyers] = quintile_scores(frequency[buyers].astype(np.float64))
        m[buyers] = quintile_scores(monetary[buyers].astype(np.float64))
    segment = np.full(n, "", dtype=object)
    segment[scored & (frequency == 0)] = "never_bought"
    table = np.array([segment_for(ri, fi) if ri and fi else "" for ri in range(6) for fi in range(6)], dtype=object)
    segment[buyers] = table[r[buyers].astype(np.int64) * 6 + f[buyers]]
    return RFM(recency, frequency, monetary, r, f, m, segment)
