"""Data for the profile-computation tests: seeded tenants with planted groups, and a tiny hand-made shop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from catalog.models import Category, Item
from profiles import seeding
from profiles.computation import recompute
from profiles.models import Event, ItemAffinity, Member, MemberProfile, Recommendation
from tenants.context import tenant_context

END = seeding.default_end(date(2026, 3, 1))
MEMBERS = 400
DAYS = 120
SEED = 11


def seed(tenant, tmp_path, *, members: int = MEMBERS, seed: int = SEED) -> dict[str, str]:
    """Seed ``tenant``; returns openid → planted group."""
    report = seeding.seed_tenant(tenant, members=members, days=DAYS, seed=seed, end=END,
                                 planted_dir=tmp_path / tenant.slug)
    return seeding.read_planted(report.planted_csv)


def run(tenant, now: datetime = END):
    result = recompute.recompute(tenant, trigger="test", now=now)
    assert result is not None and result.state == "succeeded", result and result.error
    return result


def snapshot(tenant) -> dict:
    """The results of the last run in comparable form (keyed by openid and sku, not by row id)."""
    with tenant_context(tenant):
        openid = dict(Member.objects.values_list("id", "openid"))
        return {
            "profiles": sorted(
                (openid[p.member_id], p.profiled, p.recency_days, p.frequency, p.monetary_fen, p.r_score, p.f_score,
                 p.m_score, p.rfm_segment, p.cluster, p.cluster_label, tuple(p.interest_tags), p.propensity,
                 p.predicted_spend_fen)
                for p in MemberProfile.objects.all()
            ),
            "affinities": sorted(ItemAffinity.objects.values_list("item_a__sku", "item_b__sku", "pair_count",
                                                                  "confidence", "lift")),
            "recommendations": sorted((openid[m], sku, rank, score, reason) for m, sku, rank, score, reason in
                                      Recommendation.objects.values_list("member_id", "item__sku", "rank", "score",
                                                                         "reason")),
        }


# --- a tiny hand-made shop --------------------------------------------------------------------------


class Shop:
    """Items and members written directly, for tests that need exact, readable histories."""

    def __init__(self, tenant, now: datetime = END):
        self.tenant = tenant
        self.now = now
        self.n = 0
        with tenant_context(tenant):
            drinks = Category.objects.create(name="咖啡")
            bakery = Category.objects.create(name="烘焙")
            self.items = {
                sku: Item.objects.create(sku=sku, name=name, category=cat, price_fen=price)
                for sku, name, cat, price in [("CF-01", "拿铁", drinks, 2800), ("CF-02", "美式咖啡", drinks, 2200),
                                              ("BK-01", "黄油可颂", bakery, 1500), ("BK-02", "肉桂卷", bakery, 1800)]
            }

    def member(self, openid: str, **fields) -> Member:
        with tenant_context(self.tenant):
            member = Member.objects.create(openid=openid, **fields)
            Member.objects.filter(pk=member.pk).update(first_seen_at=self.now - timedelta(days=200))
            return member

    def buy(self, member: Member, skus: list[str], days_ago: float) -> None:
        ts = self.now - timedelta(days=days_ago)
        self.n += 1
        amount = sum(self.items[s].price_fen for s in skus)
        with tenant_context(self.tenant):
            Event.objects.create(event_id=f"e{self.n}", member=member, kind="purchase", ts=ts, amount_fen=amount,
                                 props={"amount_fen": amount, "items": [{"sku": s, "qty": 1} for s in skus]})

    def view(self, member: Member, sku: str, days_ago: float) -> None:
        self.n += 1
        with tenant_context(self.tenant):
            Event.objects.create(event_id=f"e{self.n}", member=member, kind="view", item=self.items[sku],
                                 ts=self.now - timedelta(days=days_ago))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)
