"""Interest tags: a member's top categories by recency-weighted engagement.

Engagement is what ``features.read_interest`` gathered (views 1, clicks and shares 2, add-to-cart 3,
a purchased unit 5, halving every 30 days). A category becomes a tag when it holds at least
``MIN_SHARE`` of the member's engagement and enough of it in absolute terms, at most ``MAX_TAGS``.
"""

from __future__ import annotations

import numpy as np

MAX_TAGS = 3
MIN_SHARE = 0.15
MIN_WEIGHT = 1.0  # about one recent view: a single glance long ago is not an interest


def shares(interest: np.ndarray) -> np.ndarray:
    totals = interest.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, interest / np.where(totals > 0, totals, 1), 0.0).astype(np.float32)


def top_categories(interest: np.ndarray, *, max_tags: int = MAX_TAGS) -> tuple[np.ndarray, np.ndarray]:
    """Per member, up to ``max_tags`` category indices (best first, -1 padding) and their shares."""
    n, c = interest.shape
    if c == 0:
        return np.full((n, 0), -1, dtype=np.int32), np.zeros((n, 0), dtype=np.float32)
    share = shares(interest)
    k = min(max_tags, c)
    order = np.argsort(-interest, axis=1, kind="stable")[:, :k]
    picked_share = np.take_along_axis(share, order, axis=1)
    picked_weight = np.take_along_axis(interest, order, axis=1)
    keep = (picked_share >= MIN_SHARE) & (picked_weight >= MIN_WEIGHT)
    return np.where(keep, order, -1).astype(np.int32), np.where(keep, picked_share, 0).astype(np.float32)


def tags(order: np.ndarray, category_names: list[str]) -> list[list[str]]:
    names = np.array(list(category_names) + [""], dtype=object)
    picked = names[order]  # -1 picks the trailing ""
    return [[t for t in row if t] for row in picked.tolist()]
