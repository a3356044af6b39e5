"""Per-member top items, each with the reason shown to the member.

Two sources of evidence, scored for every (member, item) in chunks of members with two matrix
products, so a million members stay a matter of seconds:

* co-purchase: what the member bought in the last ``RECENT_DAYS`` (fading with age) times the
  confidence of "bought A, then B" → "买过 拿铁 的顾客也常买 黄油可颂";
* interest: the member's share of engagement per category times the item's popularity within its
  category → "您常买的 烘焙 类热门" (or 常看 when the interest comes from browsing only).

Members with neither get the shop's best sellers ("本店热销"). Items bought in the last
``EXCLUDE_DAYS`` and items no longer on sale are never suggested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.utils.translation import gettext as _

from profiles.computation.copurchase import Affinities
from profiles.computation.features import DAY, Catalogue, Lines
from profiles.computation.interests import shares

TOP_N = 6
RECENT_DAYS = 90
RECENT_HALF_LIFE_DAYS = 21
EXCLUDE_DAYS = 7
POPULAR_HALF_LIFE_DAYS = 30
COPURCHASE_WEIGHT = 0.7
INTEREST_WEIGHT = 0.3
POPULAR_WEIGHT = 0.02  # breaks ties, and is all there is for members without history
CELLS_PER_CHUNK = 2_000_000  # members × items scored at once

SOURCES = ("copurchase", "interest", "popular")


@dataclass
class Recommendations:
    member: np.ndarray  # member index
    item: np.ndarray  # item index
    rank: np.ndarray  # 1 = best
    score: np.ndarray
    source: np.ndarray  # index into SOURCES
    reason: list[str]

    def __len__(self) -> int:
        return len(self.member)


def popularity(lines: Lines, catalogue: Catalogue, as_of_epoch: float) -> np.ndarray:
    """Recency-weighted units sold per item, 0–1 (1 = the best seller); inactive items 0."""
    n_items = len(catalogue.item_ids)
    tau = POPULAR_HALF_LIFE_DAYS * DAY / np.log(2)
    weights = lines.qty * np.exp((lines.ts - as_of_epoch) / tau)
    pop = np.bincount(lines.item, weights=weights, minlength=n_items).astype(np.float64)
    pop[~catalogue.item_active] = 0
    top = pop.max() if len(pop) else 0
    return pop / top if top > 0 else pop


def category_popularity(pop: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """(categories × items): an item's popularity relative to the best seller of its category."""
    c, n_items = len(catalogue.category_ids), len(catalogue.item_ids)
    out = np.zeros((c, n_items), dtype=np.float32)
    for k in range(c):
        inside = (catalogue.item_category == k) & catalogue.item_active
        if inside.any():
            best = pop[inside].max()
            # An unsold item still ranks (lowest) in its category: an interest has something to show.
            out[k, inside] = 0.1 + 0.9 * (pop[inside] / best if best > 0 else 0)
    return out


def confidence_matrix(aff: Affinities, n_items: int) -> np.ndarray:
    c = np.zeros((n_items, n_items), dtype=np.float32)
    c[aff.item_a, aff.item_b] = aff.confidence
    return c


def recommend(members: np.ndarray, lines: Lines, catalogue: Catalogue, aff: Affinities, interest: np.ndarray,
              bought: np.ndarray, as_of_epoch: float, *, top_n: int = TOP_N,
              progress=None) -> Recommendations:
    """Recommendations for the member indices ``members`` (sorted); ``lines`` covers at least them."""
    n_items = len(catalogue.item_ids)
    out_m, out_i, out_s, out_src, reasons = [], [], [], [], []
    if n_items == 0 or not len(members):
        return _empty()
    pop = popularity(lines, catalogue, as_of_epoch)
    cat_pop = category_popularity(pop, catalogue)
    conf = confidence_matrix(aff, n_items)
    names = catalogue.item_names
    categories = catalogue.category_names
    tau = RECENT_HALF_LIFE_DAYS * DAY / np.log(2)
    share_all = shares(interest)
    chunk = max(256, CELLS_PER_CHUNK // max(n_items, 1))
    for lo in range(0, len(members), chunk):
        rows = members[lo:lo + chunk]
        size = len(rows)
        recent = np.zeros((size, n_items), dtype=np.float32)
        excluded = np.zeros((size, n_items), dtype=bool)
        span = slice(np.searchsorted(lines.member, rows[0], side="left"),
                     np.searchsorted(lines.member, rows[-1], side="right"))
        owner, item, ts = lines.member[span], lines.item[span], lines.ts[span]
        at = np.minimum(np.searchsorted(rows, owner), size - 1)
        mine = rows[at] == owner
        local, item, age = at[mine], item[mine], as_of_epoch - ts[mine]
        fresh = age <= RECENT_DAYS * DAY
        np.maximum.at(recent, (local[fresh], item[fresh]), np.exp(-age[fresh] / tau).astype(np.float32))
        very = age <= EXCLUDE_DAYS * DAY
        excluded[local[very], item[very]] = True
        cop = np.minimum(recent @ conf, 1.0)
        share = share_all[rows]
        intr = share @ cat_pop
        score = COPURCHASE_WEIGHT * cop + INTEREST_WEIGHT * intr + POPULAR_WEIGHT * pop[None, :].astype(np.float32)
        score[excluded] = -1
        score[:, ~catalogue.item_active] = -1
        k = min(top_n, n_items)
        best = np.argpartition(-score, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(score, best, axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        r, j = np.nonzero(best_scores > 0)
        items = best[r, j]
        c_part = COPURCHASE_WEIGHT * cop[r, items]
        i_part = INTEREST_WEIGHT * intr[r, items]
        source = np.where((c_part > 0) & (c_part >= i_part), 0, np.where(i_part > 0, 1, 2))
        # The purchase that contributed most to each co-purchase suggestion names the reason.
        anchor = np.argmax(recent[r] * conf[:, items].T, axis=1) if len(r) else np.zeros(0, int)
        item_cat = catalogue.item_category[items]
        bought_here = bought[rows[r], item_cat] > 0
        for a, b, s, cat, has_bought in zip(anchor.tolist(), items.tolist(), source.tolist(), item_cat.tolist(),
                                            bought_here.tolist(), strict=True):
            if s == 0:
                reasons.append(_("买过 %(a)s 的顾客也常买 %(b)s") % {"a": names[a], "b": names[b]})
            elif s == 1:
                reasons.append((_("您常买的 %(c)s 类热门") if has_bought else _("您常看的 %(c)s 类热门"))
                               % {"c": categories[cat]})
            else:
                reasons.append(_("本店热销"))
        out_m.append(rows[r])
        out_i.append(items)
        out_s.append(best_scores[r, j])
        out_src.append(source)
        if progress:
            progress(size)
    if not out_m:
        return _empty()
    member = np.concatenate(out_m)
    # Ranks count from 1 within each member; rows are already best first per member.
    first = np.r_[0, np.flatnonzero(np.diff(member)) + 1] if len(member) else np.zeros(0, int)
    rank = np.arange(len(member)) - np.repeat(first, np.diff(np.r_[first, len(member)])) + 1
    return Recommendations(member, np.concatenate(out_i), rank.astype(np.int16),
                           np.concatenate(out_s).astype(np.float64), np.concatenate(out_src), reasons)


def _empty() -> Recommendations:
    z = np.zeros(0, dtype=np.int64)
    return Recommendations(z, z, z.astype(np.int16), z.astype(np.float64), z, [])
