""""Bought A, then also bought B": item pairs over members, from purchases within a window.

A member counts for the pair A→B when they bought B in the same purchase as A or within
``WINDOW_DAYS`` after it (same purchase counts both ways). Over the members who bought anything:

* support = members with A→B / buyers;
* confidence = members with A→B / members who bought A;
* lift = confidence / (members who bought B / buyers): above 1, B follows A more than chance;
* strength = lift with the confidence at its 95 % Wilson lower bound, which ranks a pair seen in
  three members below an equally strong one seen in thirty. Pairs are ranked by it.

Vectorised: lines are sorted by member and time, and each pass pairs every line with the line
``lag`` places later, until no pair is within the window any more (a few passes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profiles.computation.features import DAY, Lines

WINDOW_DAYS = 14
MIN_MEMBERS = 3  # a pair seen in fewer members is not stored
MIN_SUPPORT = 0.0005  # nor one below this share of buyers (large tenants)
PER_ITEM = 20  # partners kept per item
Z = 1.96


@dataclass
class Affinities:
    item_a: np.ndarray
    item_b: np.ndarray
    pair_count: np.ndarray
    support: np.ndarray
    confidence: np.ndarray
    lift: np.ndarray
    strength: np.ndarray
    buyers: int
    item_buyers: np.ndarray  # per item: members who bought it

    def __len__(self) -> int:
        return len(self.item_a)


def wilson_lower(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
    n = np.maximum(trials, 1).astype(np.float64)
    p = successes / n
    centre = p + Z * Z / (2 * n)
    spread = Z * np.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return np.clip((centre - spread) / (1 + Z * Z / n), 0, 1)


def pairs_within(lines: Lines, window_days: float = WINDOW_DAYS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(member, a, b) for every ordered pair of lines of one member with b within the window after a."""
    member, item, ts = lines.member, lines.item.astype(np.int64), lines.ts
    window = window_days * DAY
    found_m, found_a, found_b = [], [], []
    lag = 1
    while lag < len(member):
        same = member[lag:] == member[:-lag]
        close = (ts[lag:] - ts[:-lag]) <= window
        ok = same & close
        if not ok.any():
            break
        i = np.flatnonzero(ok)
        j = i + lag
        found_m.append(member[i])
        found_a.append(item[i])
        found_b.append(item[j])
        together = ts[j] == ts[i]  # one purchase: the pair goes both ways
        found_m.append(member[i][together])
        found_a.append(item[j][together])
        found_b.append(item[i][together])
        lag += 1
    if not found_m:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    m, a, b = np.concatenate(found_m), np.concatenate(found_a), np.concatenate(found_b)
    keep = a != b
    return m[keep], a[keep], b[keep]


def compute(lines: Lines, n_items: int, *, window_days: float = WINDOW_DAYS) -> Affinities:
    items = max(n_items, 1)
    member_item = np.unique(lines.member.astype(np.int64) * items + lines.item)
    buyers = len(np.unique(lines.member))
    item_buyers = np.bincount(member_item % items, minlength=items)
    m, a, b = pairs_within(lines, window_days)
    if not len(m) or not buyers:
        empty = np.zeros(0)
        return Affinities(empty.astype(np.int32), empty.astype(np.int32), empty.astype(np.int32), empty, empty,
                          empty, empty, buyers, item_buyers)
    keys = np.unique(m * (items * items) + a * items + b) % (items * items)
    pair, count = np.unique(keys, return_counts=True)
    a, b = pair // items, pair % items
    floor = max(MIN_MEMBERS, int(np.ceil(MIN_SUPPORT * buyers)))
    keep = count >= floor
    a, b, count = a[keep], b[keep], count[keep]
    p_b = item_buyers[b] / buyers
    confidence = count / item_buyers[a]
    lift = confidence / p_b
    strength = wilson_lower(count, item_buyers[a]) / p_b
    keep = lift > 1.0
    a, b, count, confidence, lift, strength = a[keep], b[keep], count[keep], confidence[keep], lift[keep], strength[keep]
    # Best partners first within each item; then at most PER_ITEM of them.
    order = np.lexsort((-strength, a))
    a, b, count, confidence, lift, strength = (v[order] for v in (a, b, count, confidence, lift, strength))
    first = np.r_[0, np.flatnonzero(np.diff(a)) + 1] if len(a) else np.zeros(0, dtype=np.int64)
    rank = np.arange(len(a)) - np.repeat(first, np.diff(np.r_[first, len(a)])) if len(a) else np.zeros(0)
    keep = rank < PER_ITEM
    return Affinities(a[keep].astype(np.int32), b[keep].astype(np.int32), count[keep].astype(np.int32),
                      count[keep] / buyers, confidence[keep], lift[keep], strength[keep], buyers, item_buyers)
