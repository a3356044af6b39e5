"""Synthetic demo data with planted behavioural groups (the ``seed_demo`` command).

Two halves. The generator (``make_plan``, ``planted``, ``simulate``, ``generate``) is pure: from a seed
it produces, member by member, a member record, its behaviour events and its purchases as plain
records, touching no database. The writer (``seed_tenant``) streams those records into one
tenant's tables in chunks: COPY on PostgreSQL, batched INSERTs elsewhere. Other writers (paid
orders, say) consume the same ``SeededMember`` bundles: passed as ``extra_writers``, or registered
with ``register_seed_writer`` by an app this one may not import (from its ``AppConfig.ready``).

Reproducible: member ``i`` of seed ``s`` is drawn from its own random stream, so its openid,
planted group and history do not depend on how many members are generated or on the tenant.
Idempotent: members are keyed by openid; a re-run skips members that already exist (their events
included) and adds only the missing ones, so ``--members`` can grow a tenant step by step.
Catalogue rows are matched by SKU and category name; existing ones are kept as they are.

Timestamps fall in the ``days`` before the window's end (the start of today in Shanghai unless
given), so runs on the same day with the same seed write the same rows.

The planted group of each member is never written to the product's tables; it goes to a CSV
(``openid,group``, the members of the last run's seed, found or added) for tests and demos to
check what the profile computation finds.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import os
import random
import time
from bisect import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, models
from psycopg.types.json import Jsonb

from catalog.models import Category, Item
from profiles.models import ConsentEvent, Event, Member, MemberTag, Tag
from tenants.actions import audit
from tenants.context import tenant_context
from tenants.models import Tenant

SHANGHAI = ZoneInfo("Asia/Shanghai")
LAPSE_DAYS = 60  # a lapsed member has bought nothing for at least this long
NEW_DAYS = 14  # a new member was first seen at most this long ago
MIN_DAYS = LAPSE_DAYS + 15  # lapsed members need an active stretch before going quiet
CHUNK_MEMBERS = 2000

# --- the merchant: a coffee chain ---------------------------------------------------------------


@dataclass(frozen=True)
class ItemSpec:
    sku: str
    name: str
    category: str
    price_fen: int


CATEGORIES: tuple[str, ...] = ("经典咖啡", "手冲精品", "茶饮", "烘焙", "轻食", "甜品", "咖啡豆", "周边器具")

_ITEMS: dict[str, tuple[str, Sequence[tuple[str, int]]]] = {
    "经典咖啡": ("CF", [("美式咖啡", 2200), ("拿铁", 2800), ("卡布奇诺", 2800), ("馥芮白", 3200), ("摩卡", 3000),
                    ("焦糖玛奇朵", 3200), ("燕麦拿铁", 3200), ("浓缩咖啡", 1800), ("生椰拿铁", 2900),
                    ("陨石拿铁", 3000)]),
    "手冲精品": ("PO", [("耶加雪菲手冲", 4200), ("瑰夏手冲", 6800), ("肯尼亚 AA 手冲", 4500), ("哥伦比亚手冲", 3800),
                    ("冷萃咖啡", 3200), ("氮气冷萃", 3600)]),
    "茶饮": ("TE", [("抹茶拿铁", 3000), ("伯爵红茶拿铁", 2800), ("白桃乌龙", 2600), ("柠檬红茶", 2200),
                  ("桂花龙井", 2400), ("蜂蜜柚子茶", 2200), ("柠檬气泡水", 1800)]),
    "烘焙": ("BK", [("黄油可颂", 1500), ("杏仁可颂", 1800), ("肉桂卷", 1800), ("蓝莓麦芬", 1600), ("英式司康", 1400),
                  ("全麦贝果", 1500), ("碱水结", 1200), ("核桃欧包", 2200)]),
    "轻食": ("LS", [("鸡肉凯撒沙拉", 3800), ("牛肉三明治", 3200), ("金枪鱼三明治", 2800), ("火腿芝士帕尼尼", 2800),
                  ("牛油果鸡蛋吐司", 3000), ("希腊酸奶碗", 2600), ("鸡胸肉卷", 2600)]),
    "甜品": ("DS", [("提拉米苏", 3200), ("巴斯克芝士蛋糕", 3400), ("红丝绒蛋糕", 3200), ("抹茶千层", 3600),
                  ("焦糖布丁", 1800), ("马卡龙三枚装", 2800), ("6 寸生日蛋糕", 16800)]),
    "咖啡豆": ("BN", [("耶加雪菲咖啡豆 250g", 9800), ("云南保山咖啡豆 250g", 6800), ("意式拼配豆 500g", 12800),
                   ("哥伦比亚咖啡豆 250g", 8800), ("挂耳咖啡 10 包", 5900), ("冻干咖啡 12 颗", 6900)]),
    "周边器具": ("GE", [("不锈钢随行杯", 12800), ("陶瓷马克杯", 8800), ("手冲滤纸 100 张", 2500), ("V60 滤杯", 12800),
                    ("细口手冲壶", 23800), ("电动磨豆机", 39800), ("帆布托特包", 4900), ("咖啡礼盒", 26800)]),
}

CATALOGUE: tuple[ItemSpec, ...] = tuple(
    ItemSpec(f"{prefix}-{n:02d}", name, category, price)
    for category, (prefix, items) in _ITEMS.items()
    for n, (name, price) in enumerate(items, start=1)
)

# --- the planted behaviour ----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupSpec:
    """One planted behavioural group and the parameters its members are drawn with."""

    name: str
    label: str
    share: float  # of all members
    kind: str  # "steady": active the whole window; "lapsed": quiet for LAPSE_DAYS+; "new": recent
    visits_per_week: float
    buy_rate: float  # chance a visit ends in a purchase
    promo_buy_rate: float  # the same on a promotion day
    promo_visit_boost: float  # visits are this many times likelier on a promotion day
    lines: tuple[int, int]  # distinct items in a basket, min and max
    price_bias: float  # >0 favours dearer items within a category, <0 cheaper ones
    taste: dict[str, float]  # Dirichlet concentration over categories; unlisted ones get 0.2
    prior_spend_fen: tuple[int, int]  # spend before the window (tier and points)
    max_purchases: int | None = None
    marketing_consent: float = 0.85
    profiling_refusal: float = 0.04


GROUPS: tuple[GroupSpec, ...] = (
    GroupSpec("high_value", "高价值：常来、客单高、最近活跃", 0.08, "steady", visits_per_week=0.6, buy_rate=0.8,
              promo_buy_rate=0.8, promo_visit_boost=1.0, lines=(2, 3), price_bias=0.7,
              taste={"经典咖啡": 4, "手冲精品": 3, "咖啡豆": 3, "周边器具": 2, "烘焙": 2, "甜品": 1},
              prior_spend_fen=(100_000, 600_000), marketing_consent=0.9),
    GroupSpec("bargain", "价格敏感：多在会员日和低价商品时购买", 0.25, "steady", visits_per_week=0.18, buy_rate=0.08,
              promo_buy_rate=0.75, promo_visit_boost=4.0, lines=(1, 2), price_bias=-2.0,
              taste={"经典咖啡": 4, "烘焙": 3, "茶饮": 3, "轻食": 1},
              prior_spend_fen=(0, 40_000), marketing_consent=0.92),
    GroupSpec("lapsed", f"流失：曾经常买，近 {LAPSE_DAYS} 天没有购买", 0.20, "lapsed", visits_per_week=1.0,
              buy_rate=0.7, promo_buy_rate=0.75, promo_visit_boost=1.2, lines=(1, 3), price_bias=0.3,
              taste={"经典咖啡": 4, "茶饮": 2, "烘焙": 2, "轻食": 2, "甜品": 1},
              prior_spend_fen=(40_000, 300_000)),
    GroupSpec("new", f"新客：近 {NEW_DAYS} 天首次访问，至多一单", 0.15, "new", visits_per_week=2.0, buy_rate=0.4,
              promo_buy_rate=0.6, promo_visit_boost=1.5, lines=(1, 2), price_bias=0.0,
              taste={"经典咖啡": 3, "茶饮": 3, "烘焙": 2, "甜品": 2},
              prior_spend_fen=(0, 0), max_purchases=1, marketing_consent=0.8),
    GroupSpec("browser", "只逛不买：浏览、点击、加购，从不下单", 0.32, "steady", visits_per_week=0.25, buy_rate=0.0,
              promo_buy_rate=0.0, promo_visit_boost=1.5, lines=(1, 2), price_bias=0.5,
              taste={"甜品": 3, "周边器具": 3, "手冲精品": 2, "茶饮": 2},
              prior_spend_fen=(0, 0), max_purchases=0, marketing_consent=0.7),
)


@dataclass(frozen=True)
class PairSpec:
    """Buying ``first`` is followed, with ``probability``, by buying ``then`` within ``within_days``."""

    first: str
    then: str
    probability: float
    within_days: tuple[int, int]


PAIRS: tuple[PairSpec, ...] = (
    PairSpec("BN-01", "GE-03", 0.7, (1, 5)),  # 耶加雪菲咖啡豆 → 手冲滤纸
    PairSpec("GE-06", "BN-03", 0.6, (1, 7)),  # 电动磨豆机 → 意式拼配豆
    PairSpec("TE-01", "DS-04", 0.5, (1, 3)),  # 抹茶拿铁 → 抹茶千层
)

# Tiers by spend (prior + window), dearest first; below the last one a member has no tier.
TIERS: tuple[tuple[str, int], ...] = (("platinum", 500_000), ("gold", 200_000), ("silver", 50_000))
TAGS: tuple[str, ...] = ("写字楼白领", "学生", "宝妈", "咖啡发烧友", "企业客户", "门店-静安寺", "门店-陆家嘴")

# Sessions by local hour: breakfast, lunch and afternoon peaks; weekends start later.
_WEEKDAY_HOURS = {7: 4, 8: 10, 9: 8, 10: 4, 11: 4, 12: 8, 13: 7, 14: 4, 15: 6, 16: 5, 17: 3, 18: 3, 19: 3,
                  20: 3, 21: 2, 22: 1}
_WEEKEND_HOURS = {8: 2, 9: 4, 10: 7, 11: 7, 12: 6, 13: 6, 14: 7, 15: 8, 16: 7, 17: 5, 18: 4, 19: 4, 20: 4,
                  21: 3, 22: 2}
_DAY_FACTOR = (0.95, 0.95, 1.0, 0.95, 1.05, 1.1, 1.0)  # Monday first
MEMBER_DAY_WEEKDAY = 2  # Wednesday is 会员日
MEMBER_DAY_OF_MONTH = 18  # and so is the 18th


def is_promo_day(day: date) -> bool:
    return day.weekday() == MEMBER_DAY_WEEKDAY or day.day == MEMBER_DAY_OF_MONTH


_CITIES = (("上海", 35), ("杭州", 12), ("苏州", 10), ("南京", 8), ("北京", 8), ("深圳", 7), ("广州", 5), ("成都", 5),
           ("宁波", 4), ("无锡", 3), ("", 3))
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = "子涵欣怡浩然梓萱宇轩一诺雨桐思远佳琪俊杰晓明静怡文博嘉懿若曦"
_HANDLES = ("晴天", "小鹿", "橘子汽水", "追风少年", "Coco", "Lily", "Kevin", "阿杰", "momo", "喵喵", "Sunny", "一颗柠檬",
            "慢慢来", "海盐芝士", "Joy", "大白", "不吃香菜", "早睡早起", "Vivian", "拿铁不加糖")

# --- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    price_fen: int  # unit price


@dataclass(frozen=True)
class EventRecord:
    event_id: str
    kind: str
    ts: datetime
    sku: str | None = None
    amount_fen: int | None = None
    props: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PurchaseRecord:
    """A paid purchase: what an orders writer turns into an order; ``event_id`` is its purchase event."""

    event_id: str
    ts: datetime
    lines: tuple[Line, ...]
    amount_fen: int
    promo: bool


@dataclass(frozen=True)
class MemberRecord:
    openid: str
    nickname: str
    gender: int
    birthday: date | None
    city: str
    tier: str
    points: int
    consent_marketing: bool
    consent_profiling: bool
    first_seen_at: datetime
    last_seen_at: datetime
    tags: tuple[str, ...]

    @property
    def consent_profiling_at(self) -> datetime | None:
        return None if self.consent_profiling else self.first_seen_at + timedelta(hours=1)


@dataclass(frozen=True)
class SeededMember:
    """Everything generated for one member: who, in which planted group, and what they did."""

    index: int
    group: str
    member: MemberRecord
    events: tuple[EventRecord, ...]
    purchases: tuple[PurchaseRecord, ...]

    @property
    def spend_fen(self) -> int:
        return sum(p.amount_fen for p in self.purchases)


@dataclass(frozen=True)
class Plan:
    """Everything a run is generated from; same plan, same data."""

    seed: int
    members: int
    days: int
    end: datetime  # exclusive, aware
    catalogue: tuple[ItemSpec, ...] = CATALOGUE
    groups: tuple[GroupSpec, ...] = GROUPS
    pairs: tuple[PairSpec, ...] = PAIRS

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def default_end(today: date | None = None) -> datetime:
    """The window ends at the start of today in Shanghai, so a run never writes the future and two
    runs on the same day produce the same timestamps."""
    today = today or datetime.now(SHANGHAI).date()
    return datetime(today.year, today.month, today.day, tzinfo=SHANGHAI)


def make_plan(*, seed: int, members: int, days: int, end: datetime | None = None,
              catalogue: tuple[ItemSpec, ...] = CATALOGUE) -> Plan:
    if members < 0:
        raise ValueError("members must be zero or more")
    if days < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS}, so that lapsed members can have lapsed")
    if end is None:
        end = default_end()
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    return Plan(seed=seed, members=members, days=days, end=end, catalogue=catalogue)


# --- the generator ------------------------------------------------------------------------------


def openid_for(seed: int, index: int) -> str:
    # Looks like a real openid (28 characters, starting with "o"), fixed by seed and index.
    digest = hashlib.blake2b(f"jingzhun-seed:{seed}:{index}".encode(), digest_size=20).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _member_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"jingzhun-seed:{seed}:{index}")  # noqa: S311 - synthetic data, not security


def _draw_group(rng: random.Random, groups: Sequence[GroupSpec]) -> GroupSpec:
    x = rng.random() * sum(g.share for g in groups)
    for group in groups:
        x -= group.share
        if x < 0:
            return group
    return groups[-1]


def planted(plan: Plan, index: int) -> tuple[str, str]:
    """(openid, group) of member ``index``: cheap, without simulating its history."""
    return openid_for(plan.seed, index), _draw_group(_member_rng(plan.seed, index), plan.groups).name


class _Shop:
    """What every member's simulation shares, prepared once per plan: the calendar with each
    group's daily visit odds, and the catalogue by category with each group's price weights."""

    def __init__(self, plan: Plan):
        start = plan.start.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
        self.days = [(day, is_promo_day(day.date()))
                     for day in (start + timedelta(days=d) for d in range(plan.days + 1))]
        self.visit_odds = {
            group.name: [group.visits_per_week / 7 * _DAY_FACTOR[day.weekday()]
                         * (group.promo_visit_boost if promo else 1.0) for day, promo in self.days]
            for group in plan.groups
        }
        self.by_sku = {item.sku: item for item in plan.catalogue}
        self.categories = [c for c in CATEGORIES if any(i.category == c for i in plan.catalogue)]
        self.items = {c: [i for i in plan.catalogue if i.category == c] for c in self.categories}
        self.cum_weights: dict[tuple[str, str], list[float]] = {}
        for group in plan.groups:
            for c in self.categories:
                weights = [math.pow(i.price_fen / 100, group.price_bias) for i in self.items[c]]
                self.cum_weights[group.name, c] = list(accumulate(weights))

    def pick(self, rng: random.Random, group: GroupSpec, category: str) -> ItemSpec:
        cum = self.cum_weights[group.name, category]
        return self.items[category][bisect(cum, rng.random() * cum[-1])]


_HOURS = {weekend: (list(table), list(accumulate(table.values())))
          for weekend, table in ((False, _WEEKDAY_HOURS), (True, _WEEKEND_HOURS))}


def _local_time(rng: random.Random, day: datetime) -> datetime:
    hours, cum = _HOURS[day.weekday() >= 5]
    hour = hours[bisect(cum, rng.random() * cum[-1])]
    return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))


class _Simulation:
    """One member's history, drawn from one random stream in a fixed order."""

    def __init__(self, plan: Plan, shop: _Shop, index: int):
        self.plan, self.shop, self.index = plan, shop, index
        self.rng = rng = _member_rng(plan.seed, index)
        self.group = group = _draw_group(rng, plan.groups)
        # A Dirichlet draw: each member has their own tastes around the group's.
        gammas = [rng.gammavariate(group.taste.get(c, 0.2), 1.0) for c in shop.categories]
        self.taste_cum = list(accumulate(g + 1e-9 for g in gammas))
        self.events: list[EventRecord] = []
        # Each purchase with its event; ids are given out only once every event is known.
        self.purchases: list[tuple[EventRecord, tuple[Line, ...], int, bool]] = []

    def category(self) -> str:
        return self.shop.categories[bisect(self.taste_cum, self.rng.random() * self.taste_cum[-1])]

    def can_buy(self) -> bool:
        limit = self.group.max_purchases
        return limit is None or len(self.purchases) < limit

    def run(self) -> SeededMember:
        rng, group, plan = self.rng, self.group, self.plan
        if group.kind == "new":
            first_seen = plan.end - timedelta(days=rng.uniform(0.2, NEW_DAYS))
            active_from, active_to = first_seen, plan.end
        else:
            first_seen = plan.start - timedelta(days=rng.uniform(1, 400))
            active_from = plan.start
            quiet = LAPSE_DAYS + rng.uniform(1, 10) if group.kind == "lapsed" else 0
            active_to = plan.end - timedelta(days=quiet)
        followups: list[tuple[datetime, PairSpec]] = []
        for (day, promo), p in zip(self.shop.days, self.shop.visit_odds[group.name], strict=True):
            if rng.random() >= p:
                continue
            ts = _local_time(rng, day).astimezone(UTC)
            if not (active_from <= ts < active_to and plan.start <= ts):
                continue
            buy_rate = group.promo_buy_rate if promo else group.buy_rate
            bought = self.session(ts, buy=rng.random() < buy_rate and self.can_buy(), promo=promo)
            for pair in plan.pairs:
                if pair.first in bought and rng.random() < pair.probability:
                    later = (ts + timedelta(days=rng.uniform(*pair.within_days))).astimezone(SHANGHAI)
                    day_later = later.replace(hour=0, minute=0, second=0, microsecond=0)
                    followups.append((_local_time(rng, day_later).astimezone(UTC), pair))
        for ts, pair in sorted(followups, key=lambda f: f[0]):
            if ts < active_to and self.can_buy():
                self.session(ts, buy=True, promo=is_promo_day(ts.astimezone(SHANGHAI).date()), want=pair.then)
        return self.finish(first_seen)

    def session(self, ts: datetime, *, buy: bool, promo: bool, want: str | None = None) -> set[str]:
        """One visit: views and clicks in favourite categories, maybe a cart and a purchase."""
        rng, group, shop = self.rng, self.group, self.shop
        category = shop.by_sku[want].category if want else self.category()
        seen: list[ItemSpec] = [shop.by_sku[want]] if want else []
        for _ in range(1 + (rng.random() < 0.4) + (rng.random() < 0.2)):
            seen.append(shop.pick(rng, group, category if rng.random() < 0.7 else self.category()))
        steps: list[tuple[str, ItemSpec | None, dict]] = []
        for item in dict.fromkeys(seen):
            steps.append(("view", item, {}))
            if rng.random() < 0.35:
                steps.append(("click", item, {}))
        if rng.random() < 0.05:
            steps.append(("share", seen[0], {"to": rng.choice(("friend", "moments"))}))
        basket: list[ItemSpec] = []
        if buy or rng.random() < 0.15:  # abandoned carts happen
            n = rng.randint(*group.lines) - (1 if want else 0)
            basket = list(dict.fromkeys(seen[:1] + [shop.pick(rng, group, self.category()) for _ in range(n)]))
            steps += [("add_to_cart", item, {}) for item in basket]
        purchase = None
        if buy and basket:
            lines = tuple(Line(i.sku, 2 if rng.random() < 0.12 else 1, i.price_fen) for i in basket)
            amount = sum(line.qty * line.price_fen for line in lines)
            # The shape the events API accepts for a purchase, plus each line's unit price.
            props = {"amount_fen": amount,
                     "items": [{"sku": line.sku, "qty": line.qty, "price_fen": line.price_fen} for line in lines]}
            if promo:
                props["promo"] = "member_day"
            steps.append(("purchase", None, props))
            purchase = (lines, amount, promo)
        t = ts
        for kind, item, props in steps:
            self.events.append(EventRecord(
                event_id="", kind=kind, ts=t, sku=item.sku if item else None,
                amount_fen=purchase[1] if kind == "purchase" else None, props=props,
            ))
            t += timedelta(seconds=rng.randint(4, 90))
        if purchase is None:
            return set()
        lines, amount, promo = purchase
        self.purchases.append((self.events[-1], lines, amount, promo))
        return {line.sku for line in lines}

    def finish(self, first_seen: datetime) -> SeededMember:
        rng, plan, group = self.rng, self.plan, self.group
        # Event ids follow time order, so they are stable and readable: seed-<seed>-<member>-<n>.
        ordered = sorted(self.events, key=lambda e: e.ts)
        prefix = f"seed-{plan.seed}-{self.index}-"
        ids = {id(e): f"{prefix}{n}" for n, e in enumerate(ordered)}
        events = tuple(EventRecord(ids[id(e)], e.kind, e.ts, e.sku, e.amount_fen, e.props) for e in ordered)
        purchases = tuple(PurchaseRecord(ids[id(e)], e.ts, lines, amount, promo)
                          for e, lines, amount, promo in sorted(self.purchases, key=lambda p: p[0].ts))
        spend = sum(p.amount_fen for p in purchases) + rng.randint(*group.prior_spend_fen)
        tier = next((name for name, floor in TIERS if spend >= floor), "")
        points = int(spend // 100 * (1 - rng.uniform(0, 0.4)))  # ¥1 = 1 point, some redeemed
        style = rng.random()
        if style < 0.3:
            nickname = "微信用户"
        elif style < 0.65:
            nickname = rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, rng.randint(1, 2)))
        else:
            nickname = rng.choice(_HANDLES) + (str(rng.randint(1, 99)) if rng.random() < 0.3 else "")
        roll = rng.random()
        gender = Member.Gender.FEMALE if roll < 0.45 else Member.Gender.MALE if roll < 0.83 else Member.Gender.UNKNOWN
        birthday = None
        if rng.random() < 0.4:
            birthday = date(rng.randint(1965, 2006), rng.randint(1, 12), rng.randint(1, 28))
        city = rng.choices([c for c, _ in _CITIES], weights=[w for _, w in _CITIES])[0]
        tags: tuple[str, ...] = ()
        if rng.random() < 0.3:
            pool = list(TAGS) + (["咖啡发烧友"] * 4 if group.name == "high_value" else [])
            tags = tuple(sorted(set(rng.sample(pool, rng.randint(1, 2)))))
        member = MemberRecord(
            openid=openid_for(plan.seed, self.index), nickname=nickname, gender=int(gender), birthday=birthday,
            city=city, tier=tier, points=points,
            consent_marketing=rng.random() < group.marketing_consent,
            consent_profiling=rng.random() >= group.profiling_refusal,
            first_seen_at=first_seen, last_seen_at=events[-1].ts if events else first_seen, tags=tags,
        )
        return SeededMember(self.index, group.name, member, events, purchases)


def simulate(plan: Plan, index: int, shop: _Shop | None = None) -> SeededMember:
    return _Simulation(plan, shop or _Shop(plan), index).run()


def generate(plan: Plan, indices: Iterable[int] | None = None) -> Iterator[SeededMember]:
    """Members of ``plan`` (all, or the given indices), one at a time: memory stays flat."""
    shop = _Shop(plan)
    for index in range(plan.members) if indices is None else indices:
        yield simulate(plan, index, shop)


# --- what was planted ------------------------------------------------------------------------------


@dataclass
class GroupStats:
    members: int = 0
    purchases: int = 0
    spend_fen: int = 0
    events: int = 0
    categories: Counter = field(default_factory=Counter)

    @property
    def mean_purchases(self) -> float:
        return self.purchases / self.members if self.members else 0.0

    @property
    def mean_spend_fen(self) -> float:
        return self.spend_fen / self.members if self.members else 0.0


@dataclass
class SeedReport:
    tenant_slug: str
    seed: int
    members: int  # members of this seed, added or found
    added: int
    skipped: int
    events: int
    purchases: int
    groups: dict[str, GroupStats]
    pair_firsts: Counter  # pair index → purchases of its first item (members added this run)
    pair_followed: Counter  # pair index → of those, followed by its second item
    categories_created: int
    items_created: int
    planted_csv: Path
    seconds: float = 0.0
    pairs: tuple[PairSpec, ...] = PAIRS
    notes: list[str] = field(default_factory=list)  # one line per registered writer that describes itself

    def observe(self, seeded: SeededMember, by_sku: dict[str, ItemSpec]) -> None:
        stats = self.groups.setdefault(seeded.group, GroupStats())
        stats.members += 1
        stats.purchases += len(seeded.purchases)
        stats.spend_fen += seeded.spend_fen
        stats.events += len(seeded.events)
        for purchase in seeded.purchases:
            for line in purchase.lines:
                stats.categories[by_sku[line.sku].category] += line.qty
        for n, pair in enumerate(self.pairs):
            times = [p.ts for p in seeded.purchases if any(line.sku == pair.first for line in p.lines)]
            if not times:
                continue
            self.pair_firsts[n] += 1
            horizon = timedelta(days=pair.within_days[1] + 1)  # the follow-up visit falls on a later day
            if any(t0 < p.ts <= t0 + horizon and any(line.sku == pair.then for line in p.lines)
                   for t0 in times for p in seeded.purchases):
                self.pair_followed[n] += 1


# --- the writer ------------------------------------------------------------------------------------


def planted_csv_path(tenant_slug: str, directory: Path | None = None) -> Path:
    return Path(directory or Path(settings.BASE_DIR) / "var" / "seed") / f"{tenant_slug}.planted.csv"


def read_planted(path: Path) -> dict[str, str]:
    """openid → planted group, from a CSV the writer produced."""
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["openid"]: row["group"] for row in csv.DictReader(fh)}


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Table:
    """Rows for one table as tuples in ``columns`` order; unlisted fields get their default."""

    def __init__(self, model: type[models.Model], fields: Sequence[str], now: datetime):
        meta = model._meta
        given = [meta.get_field(name) for name in fields]
        rest = [f for f in meta.concrete_fields if f not in given and not f.primary_key]
        self.model = model
        self.fields = given + rest
        self.columns = [f.column for f in self.fields]
        self.defaults = tuple(now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
                              else f.get_default() for f in rest)
        self.table = meta.db_table
        self._types: list[int] | None = None  # PostgreSQL type oids of ``columns``, for binary COPY

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        quote = connection.ops.quote_name
        columns = ", ".join(quote(c) for c in self.columns)
        if connection.vendor == "postgresql":
            self._copy(rows, columns)
            return
        # Plain INSERTs rather than bulk_create(): auto_now_add would overwrite the planted
        # first-seen and received times with the time of the run.
        marks = ", ".join(["%s"] * len(self.columns))
        prepared = [[f.get_db_prep_save(v, connection) for f, v in zip(self.fields, row + self.defaults, strict=True)]
                    for row in rows]
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {quote(self.table)} ({columns}) VALUES ({marks})", prepared)  # noqa: S608


    def _copy(self, rows: list[tuple], columns: str) -> None:
        """COPY into a temporary staging table, then one INSERT … SELECT into the real one.

        PostgreSQL refuses COPY FROM into a table with row-level security, and the staging step
        keeps the policy in force: the INSERT is checked against the tenant in context like any other.
        """
        quote = connection.ops.quote_name
        # Named by its columns too: a staging table may outlive a chunk inside an enclosing transaction.
        shape = hashlib.blake2b(columns.encode(), digest_size=4).hexdigest()
        stage = quote(f"seed_stage_{self.table}_{shape}")
        json_at = [n for n, f in enumerate(self.fields) if isinstance(f, models.JSONField)]
        # The raw psycopg connection, in the transaction (and RLS setting) of the tenant context;
        # its errors are raised as Django's, as they would be through the ORM.
        with connection.wrap_database_errors, connection.connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "  # noqa: S608
                           f"SELECT {columns} FROM {quote(self.table)} WITH NO DATA")
            if self._types is None:
                cursor.execute("SELECT atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                               "AND NOT attisdropped ORDER BY attnum", [stage])
                self._types = [oid for (oid,) in cursor.fetchall()]
            # Binary COPY: several times faster than text for the client, which is the bottleneck.
            with cursor.copy(f"COPY {stage} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(self._types)
                for row in rows:
                    values = list(row + self.defaults)
                    for n in json_at:
                        values[n] = Jsonb(values[n], dumps=_compact_json)
                    copy.write_row(values)
            cursor.execute(f"INSERT INTO {quote(self.table)} ({columns}) SELECT {columns} FROM {stage}")  # noqa: S608
            # Within an enclosing transaction the table outlives this chunk; empty it for the next.
            cursor.execute(f"TRUNCATE {stage}")


def ensure_catalogue(tenant: Tenant, specs: Sequence[ItemSpec] = CATALOGUE
                     ) -> tuple[tuple[ItemSpec, ...], dict[str, int], int, int]:
    """Create the categories and items the demo sells, keeping any that already exist.

    Returns the catalogue as the generator should see it (prices as stored), item ids by SKU, and
    how many categories and items were created.
    """
    with tenant_context(tenant):
        existing_categories = dict(Category.objects.values_list("name", "id"))
        missing = [c for c in dict.fromkeys(s.category for s in specs) if c not in existing_categories]
        Category.objects.bulk_create([Category(name=name) for name in missing])
        categories = dict(Category.objects.values_list("name", "id"))
        stored = {sku: price for sku, price in Item.objects.filter(sku__in=[s.sku for s in specs])
                  .values_list("sku", "price_fen")}
        new_items = [Item(sku=s.sku, name=s.name, category_id=categories[s.category], price_fen=s.price_fen)
                     for s in specs if s.sku not in stored]
        Item.objects.bulk_create(new_items)
        ids = dict(Item.objects.filter(sku__in=[s.sku for s in specs]).values_list("sku", "id"))
    catalogue = tuple(ItemSpec(s.sku, s.name, s.category, stored.get(s.sku, s.price_fen)) for s in specs)
    return catalogue, ids, len(missing), len(new_items)


def _ensure_tags(names: Iterable[str]) -> dict[str, int]:
    names = list(names)
    have = dict(Tag.objects.filter(name__in=names).values_list("name", "id"))
    Tag.objects.bulk_create([Tag(name=n) for n in names if n not in have])
    return dict(Tag.objects.filter(name__in=names).values_list("name", "id"))


# A writer may return counts (orders, fen…); a registered writer's ``describe`` turns their run
# totals into a line of the command's summary.
ChunkWriter = Callable[[Tenant, list[SeededMember], dict[str, int]], Mapping[str, int] | None]
_registered: list[tuple[ChunkWriter, Callable[[Counter], str] | None]] = []


def register_seed_writer(writer: ChunkWriter, *, describe: Callable[[Counter], str] | None = None) -> ChunkWriter:
    """Have every ``seed_tenant`` run call ``writer`` on each chunk too, before any ``extra_writers``."""
    if all(w is not writer for w, _ in _registered):
        _registered.append((writer, describe))
    return writer


def seed_tenant(tenant: Tenant, *, members: int, days: int, seed: int, end: datetime | None = None,
                planted_dir: Path | None = None, progress: Callable[[int, int], None] | None = None,
                extra_writers: Sequence[ChunkWriter] = (), chunk: int = CHUNK_MEMBERS) -> SeedReport:
    """Seed ``tenant`` with members 0..members-1 of ``seed``; see the module docstring.

    Each chunk of members is one unit of work inside the tenant context: an interrupted run leaves
    whole chunks, and running it again completes it. ``progress(members, events)`` is called after
    each chunk; registered writers, then ``extra_writers``, get each chunk's new members with their
    database ids, in the chunk's unit of work.
    """
    started = time.monotonic()
    writers = list(dict.fromkeys([w for w, _ in _registered] + list(extra_writers)))
    totals: dict[ChunkWriter, Counter] = {w: Counter() for w in writers}
    catalogue, item_ids, categories_created, items_created = ensure_catalogue(tenant)
    plan = make_plan(seed=seed, members=members, days=days, end=end, catalogue=catalogue)
    shop = _Shop(plan)
    now = datetime.now(UTC)
    member_table = _Table(Member, ["tenant", "openid", "nickname", "gender", "birthday", "city", "tier", "points",
                                   "consent_marketing", "consent_marketing_at", "consent_profiling",
                                   "consent_profiling_at", "first_seen_at", "last_seen_at"], now)
    event_table = _Table(Event, ["tenant", "event_id", "member", "kind", "item", "amount_fen", "ts", "props",
                                 "received_at"], now)
    consent_table = _Table(ConsentEvent, ["tenant", "member", "kind", "granted", "source", "created_at"], now)
    tag_table = _Table(MemberTag, ["tenant", "member", "tag", "created_at"], now)
    path = planted_csv_path(tenant.slug, planted_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    report = SeedReport(tenant.slug, seed, members, 0, 0, 0, 0, {}, Counter(), Counter(), categories_created,
                        items_created, path, pairs=plan.pairs)
    with tenant_context(tenant):
        tag_ids = _ensure_tags(TAGS)
    with partial.open("w", newline="", encoding="utf-8") as fh:
        planted_out = csv.writer(fh)
        planted_out.writerow(["openid", "group"])
        for lo in range(0, members, chunk):
            indices = range(lo, min(lo + chunk, members))
            identities = [planted(plan, i) for i in indices]
            planted_out.writerows(identities)
            with tenant_context(tenant):
                present = set(Member.objects.filter(openid__in=[o for o, _ in identities])
                              .values_list("openid", flat=True))
                todo = [i for i, (openid, _) in zip(indices, identities, strict=True) if openid not in present]
                batch = [simulate(plan, i, shop) for i in todo]
                ids = _write_chunk(tenant, batch, item_ids, tag_ids, member_table, event_table, consent_table,
                                   tag_table)
                for writer in writers:
                    totals[writer].update(writer(tenant, batch, ids) or {})
            for seeded in batch:
                report.observe(seeded, shop.by_sku)
                report.events += len(seeded.events)
                report.purchases += len(seeded.purchases)
            report.added += len(batch)
            report.skipped += len(indices) - len(batch)
            if progress:
                progress(len(indices), sum(len(s.events) for s in batch))
    os.replace(partial, path)
    report.seconds = time.monotonic() - started
    report.notes = [describe(totals[w]) for w, describe in _registered if describe is not None]
    audit(tenant, "demo.seeded", target=f"seed {seed}", seed=seed, members=members, days=days,
          added=report.added, events=report.events)
    return report


def _write_chunk(tenant: Tenant, batch: list[SeededMember], item_ids: dict[str, int], tag_ids: dict[str, int],
                 member_table: _Table, event_table: _Table, consent_table: _Table,
                 tag_table: _Table) -> dict[str, int]:
    if not batch:
        return {}
    if connection.vendor == "postgresql":
        # Not waiting for each chunk's WAL flush: a crash can lose only the last chunks, and
        # running the same seed again writes them back exactly.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO off")
    t = tenant.pk
    member_table.write([
        (t, m.openid, m.nickname, m.gender, m.birthday, m.city, m.tier, m.points, m.consent_marketing,
         m.first_seen_at if m.consent_marketing else None, m.consent_profiling, m.consent_profiling_at,
         m.first_seen_at, m.last_seen_at)
        for m in (s.member for s in batch)
    ])
    ids = dict(Member.objects.filter(openid__in=[s.member.openid for s in batch]).values_list("openid", "id"))
    consents, tags, events = [], [], []
    for seeded in batch:
        m, member_id = seeded.member, ids[seeded.member.openid]
        if m.consent_marketing:
            consents.append((t, member_id, ConsentEvent.Kind.MARKETING.value, True, "miniprogram", m.first_seen_at))
        if not m.consent_profiling:
            consents.append((t, member_id, ConsentEvent.Kind.PROFILING.value, False, "miniprogram",
                             m.consent_profiling_at))
        tags += [(t, member_id, tag_ids[name], m.first_seen_at) for name in m.tags]
        events += [(t, e.event_id, member_id, e.kind, item_ids[e.sku] if e.sku else None, e.amount_fen, e.ts,
                    e.props, e.ts) for e in seeded.events]
    consent_table.write(consents)
    tag_table.write(tags)
    event_table.write(events)
    return ids
