"""seed_demo: reproducible synthetic data whose planted groups really behave as planted."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.db.models import Min

from catalog.models import Category, Item
from profiles import seeding
from profiles.models import ConsentEvent, Event, Member, MemberTag, Tag
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.fixtures import postgres_only

pytestmark = pytest.mark.django_db

END = seeding.default_end(date(2026, 3, 1))


def _seed(tenant, tmp_path, *, members=150, seed=7, days=90, **kwargs):
    return seeding.seed_tenant(tenant, members=members, days=days, seed=seed, end=END, planted_dir=tmp_path,
                               **kwargs)


def _snapshot(tenant):
    """Everything the seeder writes for a tenant, in comparable form."""
    with tenant_context(tenant):
        return {
            "members": sorted(Member.objects.values_list("openid", "nickname", "gender", "city", "tier", "points",
                                                         "consent_marketing", "consent_profiling",
                                                         "first_seen_at", "last_seen_at")),
            "events": sorted(Event.objects.values_list("event_id", "member__openid", "kind", "item__sku",
                                                       "amount_fen", "ts")),
            "items": sorted(Item.objects.values_list("sku", "name", "category__name", "price_fen")),
            "categories": sorted(Category.objects.values_list("name", flat=True)),
            "tags": sorted(MemberTag.objects.values_list("member__openid", "tag__name")),
            "consents": sorted(ConsentEvent.objects.values_list("member__openid", "kind", "granted")),
        }


def _purchases_by_openid(tenant):
    with tenant_context(tenant):
        rows = Event.objects.filter(kind=Event.Kind.PURCHASE).values_list("member__openid", "ts", "amount_fen",
                                                                          "props")
        out = defaultdict(list)
        for openid, ts, amount, props in rows:
            out[openid].append((ts, amount, props))
        return out


def test_same_seed_gives_the_same_data_in_two_tenants(tenant_a, tenant_b, tmp_path):
    report_a = _seed(tenant_a, tmp_path / "a")
    report_b = _seed(tenant_b, tmp_path / "b")

    a, b = _snapshot(tenant_a), _snapshot(tenant_b)
    assert len(a["members"]) == 150
    assert len(a["events"]) == report_a.events > 1000
    assert a == b
    assert seeding.read_planted(report_a.planted_csv) == seeding.read_planted(report_b.planted_csv)
    # A different seed is a different population.
    other = seeding.make_plan(seed=8, members=150, days=90, end=END)
    assert {seeding.planted(other, i)[0] for i in range(150)}.isdisjoint({row[0] for row in a["members"]})


def test_a_member_does_not_depend_on_how_many_are_generated():
    small = seeding.make_plan(seed=3, members=10, days=90, end=END)
    large = seeding.make_plan(seed=3, members=5000, days=90, end=END)
    assert seeding.simulate(small, 9) == seeding.simulate(large, 9)
    assert seeding.planted(small, 9) == (seeding.simulate(large, 9).member.openid, seeding.simulate(large, 9).group)
    assert seeding.simulate(small, 9) != seeding.simulate(small, 8)


def test_planted_groups_have_their_planted_behaviour(tenant_a, tmp_path):
    report = _seed(tenant_a, tmp_path, members=400, seed=11)
    planted = seeding.read_planted(report.planted_csv)
    purchases = _purchases_by_openid(tenant_a)
    with tenant_context(tenant_a):
        members = {m.openid: m for m in Member.objects.all()}
        first_event = dict(Event.objects.values_list("member__openid").order_by().annotate(first=Min("ts")))
    by_group = defaultdict(list)
    for openid, group in planted.items():
        by_group[group].append(openid)
    assert set(by_group) == {"high_value", "bargain", "lapsed", "new", "browser"}
    assert all(len(v) >= 20 for v in by_group.values()), {k: len(v) for k, v in by_group.items()}

    assert sum(len(purchases[o]) for o in by_group["browser"]) == 0
    with tenant_context(tenant_a):
        browsing = Event.objects.filter(member__openid__in=by_group["browser"]).values_list("kind", flat=True)
        assert set(browsing) <= {"view", "click", "share", "add_to_cart"} and len(browsing) > 0

    lapse_start = END - timedelta(days=seeding.LAPSE_DAYS)
    lapsed_purchases = [ts for o in by_group["lapsed"] for ts, _, _ in purchases[o]]
    assert lapsed_purchases and max(lapsed_purchases) < lapse_start
    assert sum(1 for o in by_group["lapsed"] if purchases[o]) > len(by_group["lapsed"]) * 0.6

    new_since = END - timedelta(days=seeding.NEW_DAYS)
    for openid in by_group["new"]:
        assert members[openid].first_seen_at >= new_since
        assert len(purchases[openid]) <= 1
        assert openid not in first_event or first_event[openid] >= members[openid].first_seen_at
    for group in ("high_value", "bargain", "lapsed", "browser"):
        assert all(members[o].first_seen_at < END - timedelta(days=90) for o in by_group[group])

    def mean_spend(group):
        return sum(amount for o in by_group[group] for _, amount, _ in purchases[o]) / len(by_group[group])

    def mean_count(group):
        return sum(len(purchases[o]) for o in by_group[group]) / len(by_group[group])

    others = ("bargain", "lapsed", "new", "browser")
    assert all(mean_spend("high_value") > 2 * mean_spend(g) for g in others)
    assert all(mean_count("high_value") > mean_count(g) for g in others)
    # Bargain hunters buy mostly on 会员日 (about one day in six), and cheaper things than high-value members.
    bargain = [(ts, props) for o in by_group["bargain"] for ts, _, props in purchases[o]]
    on_promo = sum(seeding.is_promo_day(ts.astimezone(seeding.SHANGHAI).date()) for ts, _ in bargain)
    assert on_promo > 0.6 * len(bargain)
    assert all((props.get("promo") == "member_day") == seeding.is_promo_day(ts.astimezone(seeding.SHANGHAI).date())
               for ts, props in bargain)

    def mean_unit_price(group):
        lines = [line for o in by_group[group] for _, _, props in purchases[o] for line in props["items"]]
        return sum(line["price_fen"] for line in lines) / len(lines)

    assert mean_unit_price("bargain") < mean_unit_price("high_value")
    assert report.groups["browser"].purchases == 0
    assert report.groups["high_value"].members == len(by_group["high_value"])


def test_purchases_are_consistent_with_catalogue_and_members(tenant_a, tmp_path):
    _seed(tenant_a, tmp_path, members=120)
    with tenant_context(tenant_a):
        prices = dict(Item.objects.values_list("sku", "price_fen"))
        purchases = list(Event.objects.filter(kind="purchase").values_list("amount_fen", "props", "item_id"))
        members = list(Member.objects.values_list("openid", "tier", "points", "consent_profiling",
                                                  "consent_marketing", "first_seen_at", "last_seen_at"))
        events = list(Event.objects.values_list("member__openid", "ts", "kind"))
        consents = Counter(ConsentEvent.objects.values_list("kind", "granted"))
    assert len(prices) == len(seeding.CATALOGUE) == 59
    assert purchases
    for amount, props, item_id in purchases:
        assert item_id is None
        # A 会员日 coupon (payments' seed writer) takes its discount off what was paid; items keep list prices.
        assert amount == props["amount_fen"] == (sum(line["qty"] * line["price_fen"] for line in props["items"])
                                                 - props.get("discount_fen", 0))
        assert all(prices[line["sku"]] == line["price_fen"] for line in props["items"])
    last = defaultdict(lambda: None)
    for openid, ts, _ in events:
        assert END - timedelta(days=90) <= ts < END
        last[openid] = max(ts, last[openid] or ts)
    tier_floor = dict(seeding.TIERS)
    for openid, tier, points, _, _, first_seen, last_seen in members:
        assert last_seen == (last[openid] or first_seen)
        assert tier == "" or points <= 10 * tier_floor[tier]
    assert consents[("profiling", False)] == sum(1 for m in members if not m[3]) > 0
    assert consents[("marketing", True)] == sum(1 for m in members if m[4]) > 0
    assert ("profiling", True) not in consents and ("marketing", False) not in consents
    # Shanghai daytime: nobody browses the coffee shop's Mini Program between 1 and 6 in the morning.
    assert all(not 1 <= ts.astimezone(seeding.SHANGHAI).hour < 6 for _, ts, _ in events)


def test_planted_csv_matches_the_database(tenant_a, tmp_path):
    assert seeding.planted_csv_path("shop-a") == settings.BASE_DIR / "var" / "seed" / "shop-a.planted.csv"
    report = _seed(tenant_a, tmp_path, members=90)
    assert report.planted_csv == tmp_path / "shop-a.planted.csv"
    planted = seeding.read_planted(report.planted_csv)
    with tenant_context(tenant_a):
        assert set(Member.objects.values_list("openid", flat=True)) == set(planted)
    assert Counter(planted.values()) == {g: s.members for g, s in report.groups.items()}
    assert not list(tmp_path.glob("*.partial"))


def test_rerun_adds_nothing_and_more_members_adds_only_the_missing(tenant_a, tmp_path):
    _seed(tenant_a, tmp_path, members=60)
    before = _snapshot(tenant_a)

    again = _seed(tenant_a, tmp_path, members=60)
    assert (again.added, again.skipped, again.events) == (0, 60, 0)
    assert (again.categories_created, again.items_created) == (0, 0)
    assert _snapshot(tenant_a) == before

    grown = _seed(tenant_a, tmp_path, members=100, chunk=25)
    after = _snapshot(tenant_a)
    assert (grown.added, grown.skipped) == (40, 60)
    assert set(before["members"]) < set(after["members"]) and len(after["members"]) == 100
    assert set(before["events"]) < set(after["events"])
    expected = seeding.generate(seeding.make_plan(seed=7, members=100, days=90, end=END), range(60, 100))
    assert len(after["events"]) - len(before["events"]) == sum(len(m.events) for m in expected) == grown.events
    assert len(seeding.read_planted(grown.planted_csv)) == 100
    with tenant_context(tenant_a):
        assert Tag.objects.count() == len(seeding.TAGS)
        assert list(AuditEvent.objects.filter(action="demo.seeded").values_list("details__added", flat=True)
                    .order_by("pk")) == [60, 0, 40]


def test_seeding_one_tenant_leaves_the_other_untouched(tenant_a, tenant_b, tmp_path):
    _seed(tenant_a, tmp_path / "a", members=50)
    before = _snapshot(tenant_a)
    report = _seed(tenant_b, tmp_path / "b", members=80, seed=7)
    assert _snapshot(tenant_a) == before
    with tenant_context(tenant_a):
        pks_a = list(Member.objects.values_list("pk", flat=True))
    with tenant_context(tenant_b):
        assert Member.objects.count() == 80
        assert Event.objects.count() == report.events
        # Same seed, so the same openids as tenant_a's members, yet separate rows.
        assert Member.objects.filter(openid__in=[o for o, *_ in before["members"]]).count() == 50
        assert not Member.objects.filter(pk__in=pks_a).exists()


def test_extra_writers_get_each_new_member_with_its_database_id(tenant_a, tmp_path):
    seen = []

    def orders_writer(tenant, batch, ids):
        seen.append((tenant.pk, [(ids[m.member.openid], m.purchases) for m in batch]))

    _seed(tenant_a, tmp_path, members=30, chunk=20, extra_writers=[orders_writer])
    assert [len(rows) for _, rows in seen] == [20, 10]
    assert {t for t, _ in seen} == {tenant_a.pk}
    by_member = {member_id: purchases for _, rows in seen for member_id, purchases in rows}
    with tenant_context(tenant_a):
        stored = Counter((member_id, event_id, amount + props.get("discount_fen", 0))  # list price, as recorded
                         for member_id, event_id, amount, props in Event.objects.filter(kind="purchase")
                         .values_list("member_id", "event_id", "amount_fen", "props"))
    assert stored == Counter((mid, p.event_id, p.amount_fen) for mid, ps in by_member.items() for p in ps)


def test_command_prints_what_it_planted(tenant_a, tmp_path):
    out = io.StringIO()
    call_command("seed_demo", "shop-a", "--members", "40", "--seed", "5", "--until", "2026-03-01",
                 "--planted-dir", str(tmp_path), verbosity=0, stdout=out)
    text = out.getvalue()
    assert "新增会员 40" in text
    for group in ("high_value", "bargain", "lapsed", "new", "browser"):
        assert group in text
    for pair in seeding.PAIRS:
        assert f"{pair.first} " in text and f"{pair.then} " in text
    assert str(tmp_path / "shop-a.planted.csv") in text
    with tenant_context(tenant_a):
        assert Member.objects.count() == 40
        assert Event.objects.latest("ts").ts < END


def test_command_refuses_unknown_tenant_and_short_window(tenant_a, tmp_path):
    with pytest.raises(CommandError):
        call_command("seed_demo", "no-such-shop", "--planted-dir", str(tmp_path), verbosity=0)
    with pytest.raises(CommandError):
        call_command("seed_demo", "shop-a", "--days", "30", "--planted-dir", str(tmp_path), verbosity=0)
    with tenant_context(tenant_a):
        assert not Member.objects.exists() and not Item.objects.exists()


@postgres_only
def test_copy_is_bound_by_row_level_security(tenant_a, tenant_b, tmp_path):
    _seed(tenant_a, tmp_path, members=20)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM profiles_member")  # no tenant in context: RLS shows nothing
        assert cursor.fetchone()[0] == 0
    table = seeding._Table(Member, ["tenant", "openid"], END)
    with pytest.raises(DatabaseError, match="row-level security"):
        with tenant_context(tenant_a):
            table.write([(tenant_b.pk, "o-smuggled")])
    with tenant_context(tenant_b):
        assert not Member.objects.exists()
