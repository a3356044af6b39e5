"""The member console: search, filters, keyset pages in exact order, member page, isolation."""

from __future__ import annotations

import datetime
import itertools
import json

import pytest
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Upper
from django.test import Client
from django.utils import timezone

from profiles import member_list
from profiles.actions import erase_member
from profiles.member_list import MemberFilters, member_page, phone_digest
from profiles.models import ConsentEvent, Event, Member, MemberTag, Tag
from profiles.timeline import TimelineEntry, register_source, unregister_source
from tenants.context import tenant_context
from tenants.db_roles import app_role
from tests.fixtures import make_staff, postgres_only

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
DAY = datetime.timedelta(days=1)

# (openid, nickname, last seen days ago or None, first seen days ago, points, tier, marketing, profiling, phone)
PEOPLE = [
    ("o_alice_00000000000000000001", "Alice", 1, 300, 50, "gold", True, True, "13800000001"),
    ("o_bob_0000000000000000000002", "Bob", 3, 200, 500, "silver", False, True, "13900001234"),
    ("o_carol_00000000000000000003", "Carol", 3, 100, 50, "gold", True, False, ""),
    ("o_alina_00000000000000000004", "Alina", 10, 50, 0, "", True, True, "13700005678"),
    ("o_dave_000000000000000000005", "Dave", None, 40, 900, "silver", False, False, ""),
    ("o_erin_000000000000000000006", "Erin", 40, 30, 50, "gold", False, True, "13600001234"),
    ("o_frank_00000000000000000007", "小明 Frank", None, 20, 10, "", True, True, ""),
    ("o_grace_00000000000000000008", "=cmd|' /C calc'!A0", 2, 10, 70, "", True, True, ""),
]


def masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if phone else ""


def make_people(tenant) -> dict[str, Member]:
    """The same people (same openids, nicknames, phones) in any tenant: look-alikes across tenants."""
    made = {}
    with tenant_context(tenant):
        for openid, nickname, seen, first, points, tier, marketing, profiling, phone in PEOPLE:
            member = Member.objects.create(
                openid=openid, nickname=nickname, points=points, tier=tier, consent_marketing=marketing,
                consent_profiling=profiling, phone=phone, phone_masked=masked(phone),
                phone_digest=phone_digest(phone) if phone else "",
                last_seen_at=NOW - seen * DAY if seen is not None else None)
            Member.objects.filter(pk=member.pk).update(first_seen_at=NOW - first * DAY)
            member.refresh_from_db()
            made[key_of(member)] = member
    return made


@pytest.fixture
def people(tenant_a, tenant_b):
    a = make_people(tenant_a)
    b = make_people(tenant_b)
    return a, b


@pytest.fixture
def console_a(owner_a):
    client = Client()
    client.force_login(owner_a)
    return client


def key_of(member: Member) -> str:
    return member.openid.split("_")[1]


def names(members) -> list[str]:
    return [key_of(m) for m in members]


def walk(tenant, filters: MemberFilters, size: int) -> list[list[str]]:
    pages, after = [], ""
    with tenant_context(tenant):
        while True:
            page = member_page(filters, after=after, size=size)
            pages.append(names(page.members))
            if not page.next_cursor:
                return pages
            after = page.next_cursor


def expected_order(sort: str) -> list[str]:
    key, desc = sort.lstrip("-"), sort.startswith("-")
    index = {"last_seen": 2, "first_seen": 3, "points": 4}[key]
    # Seen-ago columns run backwards in time: fewer days ago = later.
    rows = [(p[index], n, p[0].split("_")[1]) for n, p in enumerate(PEOPLE)]
    present = [r for r in rows if r[0] is not None]
    absent = [r for r in rows if r[0] is None]
    if key == "points":
        present.sort(key=lambda r: (-r[0], r[1]) if desc else (r[0], -r[1]))
    else:
        present.sort(key=lambda r: (r[0], r[1]) if desc else (-r[0], -r[1]))
    absent.sort(key=lambda r: r[1], reverse=not desc)
    return [r[2] for r in present + absent]


@pytest.mark.parametrize("sort", list(member_list.SORTS))
@pytest.mark.parametrize("size", [1, 2, 3, 50])
def test_pages_walk_the_whole_list_in_exact_order(people, tenant_a, sort, size):
    pages = walk(tenant_a, MemberFilters(sort=sort), size)
    expected = expected_order(sort)
    assert list(itertools.chain(*pages)) == expected
    assert all(len(p) == size for p in pages[:-1]) and 0 < len(pages[-1]) <= size


def test_expected_order_ties_and_nulls_are_what_the_test_means():
    # Bob and Carol were both seen 3 days ago; Dave and Frank never: ties break on id, NULLs last.
    assert expected_order("-last_seen") == ["alice", "grace", "bob", "carol", "alina", "erin", "dave", "frank"]
    assert expected_order("last_seen") == ["erin", "alina", "carol", "bob", "grace", "alice", "frank", "dave"]
    assert expected_order("-points") == ["dave", "bob", "grace", "alice", "carol", "erin", "frank", "alina"]


@pytest.mark.parametrize("sort", list(member_list.SORTS))
def test_prev_cursor_walks_back_to_the_same_pages(people, tenant_a, sort):
    filters = MemberFilters(sort=sort)
    forward = []
    after = ""
    with tenant_context(tenant_a):
        while True:
            page = member_page(filters, after=after, size=3)
            forward.append((names(page.members), page.prev_cursor))
            if not page.next_cursor:
                break
            after = page.next_cursor
        backward = []
        before = forward[-1][1]
        while before:
            page = member_page(filters, before=before, size=3)
            backward.append(names(page.members))
            before = page.prev_cursor
    assert backward == [p for p, _ in forward[:-1]][::-1]
    assert forward[0][1] is None


def test_other_tenants_lookalikes_never_appear(people, tenant_a, tenant_b):
    a, b = people
    with tenant_context(tenant_a):
        ids = [m.pk for m in member_page(MemberFilters(), size=200).members]
        by_openid = member_page(MemberFilters(q=PEOPLE[0][0]), size=200).members
    assert sorted(ids) == sorted(m.pk for m in a.values())
    assert not set(ids) & {m.pk for m in b.values()}
    assert [m.pk for m in by_openid] == [a["alice"].pk]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (MemberFilters(q="Al"), ["alice", "alina"]),
        (MemberFilters(q="al", search="nickname"), ["alice", "alina"]),
        (MemberFilters(q="li", search="nickname"), []),
        (MemberFilters(q="LI", search="nickname_contains"), ["alice", "alina"]),
        (MemberFilters(q="frank", search="nickname_contains"), ["frank"]),
        (MemberFilters(q="小明"), ["frank"]),
        (MemberFilters(q="o_bob_0000000000000000000002"), ["bob"]),
        (MemberFilters(q="o_bob_000000000000000000000", search="openid"), []),
        (MemberFilters(q="1234"), ["bob", "erin"]),
        (MemberFilters(q="13900001234"), ["bob"]),
        (MemberFilters(q="+86 139 0000 1234"), ["bob"]),
        (MemberFilters(q="13900009999"), []),
        (MemberFilters(tier="gold"), ["alice", "carol", "erin"]),
        (MemberFilters(seen_within_days=5), ["alice", "grace", "bob", "carol"]),
        (MemberFilters(seen_before=(NOW - 9 * DAY).astimezone(member_list.SHANGHAI).date()), ["alina", "erin"]),
        (MemberFilters(marketing=False), ["bob", "erin", "dave"]),
        (MemberFilters(profiling=False), ["carol", "dave"]),
        (MemberFilters(tier="silver", marketing=False, sort="-points"), ["dave", "bob"]),
    ],
)
def test_search_and_filters(people, tenant_a, filters, expected):
    with tenant_context(tenant_a):
        assert names(member_page(filters, size=200).members) == expected


def test_tag_filter_and_erased_members(people, tenant_a, tenant_b):
    a, b = people
    with tenant_context(tenant_b):
        tag_b = Tag.objects.create(name="VIP")
        MemberTag.objects.create(member=b["alice"], tag=tag_b)
    with tenant_context(tenant_a):
        vip = Tag.objects.create(name="VIP")
        for key in ("carol", "dave"):
            MemberTag.objects.create(member=a[key], tag=vip)
        Member.objects.filter(pk=a["bob"].pk).update(erased_at=NOW)
        assert names(member_page(MemberFilters(tag_id=vip.pk), size=50).members) == ["carol", "dave"]
        assert names(member_page(MemberFilters(tag_id=tag_b.pk), size=50).members) == []
        assert "bob" not in names(member_page(MemberFilters(), size=50).members)


def test_estimate_is_exact_for_small_lists(people, tenant_a):
    with tenant_context(tenant_a):
        assert member_list.estimate_count(MemberFilters(tier="gold")) == member_list.CountEstimate(3, True)


def test_bad_cursor_is_refused():
    sort = member_list.SORTS["-points"]
    for token in ["!!", "bm90LWpzb24", member_list.Cursor(1, None, 5).encode(),
                  member_list.Cursor(0, "x", 5).encode()]:
        with pytest.raises(member_list.BadCursor):
            member_list.decode_cursor(token, sort)


# --- last-4 phone search ----------------------------------------------------------------------

@pytest.mark.parametrize("sort", list(member_list.SORTS))
def test_last4_search_pages_in_the_lists_order(people, tenant_a, tenant_b, sort):
    a, b = people
    expected = [key for key in expected_order(sort) if key in ("bob", "erin")]
    for search in ("auto", "phone"):
        filters = MemberFilters(q="1234", search=search, sort=sort)
        assert walk(tenant_a, filters, 1) == [[key] for key in expected]
        with tenant_context(tenant_a):
            found = member_page(filters, size=50).members
        assert [m.pk for m in found] == [a[key].pk for key in expected]
    assert walk(tenant_b, MemberFilters(q="5678", search="phone", sort=sort), 50) == [["alina"]]
    assert walk(tenant_a, MemberFilters(q="0000", search="phone", sort=sort), 50) == [[]]


def test_last4_follows_every_write_of_the_masked_phone(people, tenant_a, tenant_b):
    a, b = people
    with tenant_context(tenant_a):
        alice = a["alice"]
        alice.phone_masked = "138****1234"
        alice.save()
        carol = a["carol"]
        carol.phone_masked = "135****1234"
        carol.save(update_fields=["phone_masked"])
        Member.objects.filter(pk=a["alina"].pk).update(phone_masked="137****4321")
        # Nothing can store last four digits that disagree with the masked phone.
        Member.objects.filter(pk=a["bob"].pk).update(phone_last4="0000")
        henry = Member.objects.bulk_create([Member(tenant=tenant_a, openid="o_henry_00000000000000000009",
                                                   nickname="Henry", phone_masked="188****1234")])[0]
    erase_member(tenant_a, member=a["erin"])
    with tenant_context(tenant_a):
        stored = dict(Member.objects.values_list("pk", "phone_last4"))
        found = member_page(MemberFilters(q="1234"), size=50).members
    assert stored == {
        a["alice"].pk: "1234", a["bob"].pk: "1234", a["carol"].pk: "1234", a["alina"].pk: "4321",
        a["dave"].pk: "", a["erin"].pk: "", a["frank"].pk: "", a["grace"].pk: "", henry.pk: "1234",
    }
    # Bob and Carol were both seen 3 days ago (ties on id); Henry was never seen; Erin is erased.
    assert [m.pk for m in found] == [a["alice"].pk, a["bob"].pk, a["carol"].pk, henry.pk]
    with tenant_context(tenant_b):
        assert dict(Member.objects.values_list("pk", "phone_last4")) == {
            b["alice"].pk: "0001", b["bob"].pk: "1234", b["carol"].pk: "", b["alina"].pk: "5678",
            b["dave"].pk: "", b["erin"].pk: "1234", b["frank"].pk: "", b["grace"].pk: "",
        }
        assert [m.pk for m in member_page(MemberFilters(q="1234"), size=50).members] == [b["bob"].pk, b["erin"].pk]


def _index_conditions(plan: dict) -> list[str]:
    found = [plan["Index Cond"]] if "Index Cond" in plan else []
    for child in plan.get("Plans", []):
        found += _index_conditions(child)
    return found


def _add_filler_members(tenant, count: int = 20_000) -> None:
    """Rows nobody searches for. With no statistics yet, a handful of rows makes every index led by
    tenant_id cost the same and the planner's pick arbitrary; at this size the one matching the most
    conditions wins, as at production size."""
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO profiles_member (tenant_id, openid, unionid, nickname, avatar_url, gender, city, phone, "
            "phone_masked, phone_digest, tier, points, consent_marketing, consent_profiling, first_seen_at) "
            "SELECT %s, 'o_filler_' || lpad(i::text, 20, '0'), '', 'Filler ' || i, '', 0, '', '', '', '', '', 0, "
            "false, false, now() FROM generate_series(1, %s) AS i",
            [tenant.pk, count],
        )


@postgres_only
def test_last4_search_is_an_index_condition_under_row_level_security(people, tenant_a, tenant_b):
    # Row-level security keeps a condition calling a function that is not leakproof (right(),
    # upper(), LIKE) out of every index; the last four digits must be compared as a plain column.
    _add_filler_members(tenant_b)
    with tenant_context(tenant_a):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SELECT current_user, usesuper FROM pg_user WHERE usename = current_user")
            user, superuser = cursor.fetchone()
        plan = json.loads(member_list.filtered_members(MemberFilters(q="1234")).order_by().explain(format="json"))
    assert (user, superuser) == (app_role(), False)
    assert [c for c in _index_conditions(plan[0]["Plan"]) if "phone_last4" in c] == [
        f"((tenant_id = {tenant_a.pk}) AND ((phone_last4)::text = '1234'::text))"
    ]


# --- nickname search ---------------------------------------------------------------------------

# Beside PEOPLE, in both tenants: accents, CJK, an astral character, LIKE's wildcards and escape,
# the characters either side of the surrogates and the last code point (the prefix's upper bound).
NICKNAMED = [
    ("o_hana_00000000000000000000010", "Élodie", 5),
    ("o_ivan_00000000000000000000011", "élise", 6),
    ("o_jun_000000000000000000000012", "小明明", 7),
    ("o_kai_000000000000000000000013", "100%_real", 8),
    ("o_lei_000000000000000000000014", "100 percent", 9),
    ("o_mei_000000000000000000000015", "a\\b", 11),
    ("o_nan_000000000000000000000016", "🐱咪咪", 12),
    ("o_ola_000000000000000000000017", "\ud7ff猫", 13),
    ("o_pia_000000000000000000000018", "\ue000猫", 14),
    ("o_quin_0000000000000000000019", "z\U0010ffff!", 15),
    ("o_rex_000000000000000000000020", "{rex", None),
]
NICKNAME_QUERIES = [
    "al", "AL", "aL", "ali", "alice", "alicex", "li", "é", "É", "élo", "ÉLISE", "e", "小明", "小明 f", "小明明明",
    "100", "100%", "100%_", "100_", "100 ", "a\\", "a\\b", "🐱", "🐱咪", "\ud7ff", "\ue000", "z", "z\U0010ffff",
    "=", "=cmd|'", "{", "  al  ",
]


@pytest.fixture
def nicknamed(people, tenant_a, tenant_b):
    made = []
    for tenant, found in zip((tenant_a, tenant_b), people, strict=True):
        with tenant_context(tenant):
            for openid, nickname, seen in NICKNAMED:
                found[openid.split("_")[1]] = Member.objects.create(
                    openid=openid, nickname=nickname, points=seen or 0,
                    last_seen_at=NOW - seen * DAY if seen is not None else None)
        made.append(found)
    return made


def _old_search(q: str, mode: str):
    """The nickname search before the stored key: upper(nickname) LIKE upper(q) || '%'."""
    q = q.strip()
    return Q(nickname__icontains=q) if mode == "nickname_contains" else Q(nickname__istartswith=q)


def test_prefix_bound_is_the_least_string_after_the_prefix():
    assert member_list.prefix_bound("AL") == "AM"
    assert member_list.prefix_bound("小明") == "小昏"
    assert member_list.prefix_bound("a\U0010ffff") == "b"
    assert member_list.prefix_bound("\ud7ff") == "\ue000"
    assert member_list.prefix_bound("🐱") == "🐲"
    assert member_list.prefix_bound("\U0010ffff\U0010ffff") is None


@pytest.mark.parametrize("sort", list(member_list.SORTS))
def test_nickname_search_finds_what_upper_like_found_in_the_lists_order(nicknamed, tenant_a, tenant_b,
                                                                       monkeypatch, sort):
    a, b = nicknamed
    for mode in ("nickname", "nickname_contains"):
        for q in NICKNAME_QUERIES:
            filters = MemberFilters(q=q, search=mode, sort=sort)
            with monkeypatch.context() as old:
                old.setattr(member_list, "_search", _old_search)
                before = walk(tenant_a, filters, 50)
                before_b = walk(tenant_b, filters, 50)
            assert walk(tenant_a, filters, 50) == before, (mode, q)
            in_pairs = [before[0][i:i + 2] for i in range(0, len(before[0]), 2)] or [[]]
            assert walk(tenant_a, filters, 2) == in_pairs, (mode, q)
            assert walk(tenant_b, filters, 50) == before_b, (mode, q)
    # The same pages as before, and what they hold, spelled out where every database folds alike.
    found = {}
    for q in ("al", "AL", "li", "小明", "100%", "100_", "100 ", "a\\", "🐱", "\ud7ff", "z\U0010ffff", "{", "=cmd|'"):
        with tenant_context(tenant_a):
            found[q] = sorted(names(member_page(MemberFilters(q=q, search="nickname", sort=sort), size=50).members))
    assert found == {
        "al": ["alice", "alina"], "AL": ["alice", "alina"], "li": [], "小明": ["frank", "jun"], "100%": ["kai"],
        "100_": [], "100 ": ["kai", "lei"], "a\\": ["mei"], "🐱": ["nan"], "\ud7ff": ["ola"],
        "z\U0010ffff": ["quin"], "{": ["rex"], "=cmd|'": ["grace"],
    }
    with tenant_context(tenant_a):
        contains = names(member_page(MemberFilters(q="LI", search="nickname_contains", sort=sort), size=50).members)
    assert sorted(contains) == ["alice", "alina", "ivan"]
    assert not {m.pk for m in b.values()} & {m.pk for m in a.values()}


def test_nickname_key_follows_every_write_of_the_nickname(nicknamed, tenant_a, tenant_b):
    a, b = nicknamed
    with tenant_context(tenant_a):
        alice = a["alice"]
        alice.nickname = "Alicia"
        alice.save()
        carol = a["carol"]
        carol.nickname = "小红 carol"
        carol.save(update_fields=["nickname"])
        Member.objects.filter(pk=a["alina"].pk).update(nickname="linA")
        # Nothing can store a key that disagrees with the nickname.
        Member.objects.filter(pk=a["bob"].pk).update(nickname_key="ZZZ")
        dave = a["dave"]
        dave.nickname = "dave 2"
        Member.objects.bulk_update([dave], ["nickname"])
        henry = Member.objects.bulk_create([Member(tenant=tenant_a, openid="o_henry_00000000000000000009",
                                                   nickname="Henry", last_seen_at=NOW)])[0]
    erase_member(tenant_a, member=a["erin"])
    with tenant_context(tenant_a):
        stored = dict(Member.objects.values_list("pk", "nickname_key"))
        # Whatever else the database's upper() folds (accents on PostgreSQL, not on SQLite), it is
        # what the key holds.
        folded = dict(Member.objects.annotate(folded=Upper("nickname")).values_list("pk", "folded"))
        found = member_page(MemberFilters(q="li", search="nickname"), size=50).members
    assert stored == folded
    assert {key: stored[a[key].pk] for key in ("alice", "bob", "carol", "alina", "dave", "erin", "frank", "grace")} == {
        "alice": "ALICIA", "bob": "BOB", "carol": "小红 CAROL", "alina": "LINA", "dave": "DAVE 2", "erin": "",
        "frank": "小明 FRANK", "grace": "=CMD|' /C CALC'!A0",
    }
    assert stored[henry.pk] == "HENRY"
    assert [m.pk for m in found] == [a["alina"].pk]
    with tenant_context(tenant_b):
        assert {key: Member.objects.get(pk=b[key].pk).nickname_key for key in ("alice", "bob", "alina")} == {
            "alice": "ALICE", "bob": "BOB", "alina": "ALINA"}
        assert names(member_page(MemberFilters(q="li", search="nickname"), size=50).members) == []


@postgres_only
def test_nickname_prefix_search_is_an_index_condition_under_row_level_security(nicknamed, tenant_a, tenant_b):
    # upper() and LIKE are not leakproof: under row-level security the old search read every row.
    _add_filler_members(tenant_b)
    with tenant_context(tenant_a):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        prefix = json.loads(member_list.filtered_members(MemberFilters(q="al")).order_by().explain(format="json"))
        cjk = json.loads(member_list.filtered_members(MemberFilters(q="小明")).order_by().explain(format="json"))
        contains = member_list.filtered_members(MemberFilters(q="li", search="nickname_contains")).explain()
    assert [c for c in _index_conditions(prefix[0]["Plan"]) if "nickname_key" in c] == [
        f"((tenant_id = {tenant_a.pk}) AND (nickname_key ~>=~ 'AL'::text) AND (nickname_key ~<~ 'AM'::text))"
    ]
    assert [c for c in _index_conditions(cjk[0]["Plan"]) if "nickname_key" in c] == [
        f"((tenant_id = {tenant_a.pk}) AND (nickname_key ~>=~ '小明'::text) AND (nickname_key ~<~ '小昏'::text))"
    ]
    # A substring has no leakproof operator: still read row by row, but without upper() on each.
    assert "(nickname_key ~~ '%LI%'::text)" in contains and "upper(" not in contains


# --- through the console ---------------------------------------------------------------------

def rows_of(response) -> list[int]:
    return [m.pk for m in response.context["members"]]


def test_list_page_paginates_with_next_and_prev_links(people, tenant_a, console_a, monkeypatch):
    a, _ = people
    monkeypatch.setattr(member_list, "PAGE_SIZE", 3)
    url = "/console/shop-a/members/"
    first = console_a.get(url, {"sort": "-points"})
    assert first.status_code == 200
    assert rows_of(first) == [a[n].pk for n in ("dave", "bob", "grace")]
    assert first.context["count"] == 8 and first.context["count_exact"] is True
    body = first.content.decode()
    next_cursor = first.context["page"].next_cursor
    assert f'href="?sort=-points&amp;after={next_cursor}"' in body
    assert "before=" not in body
    second = console_a.get(url, {"sort": "-points", "after": next_cursor})
    assert rows_of(second) == [a[n].pk for n in ("alice", "carol", "erin")]
    third = console_a.get(url, {"sort": "-points", "after": second.context["page"].next_cursor})
    assert rows_of(third) == [a[n].pk for n in ("frank", "alina")]
    assert third.context["page"].next_cursor is None
    back = console_a.get(url, {"sort": "-points", "before": third.context["page"].prev_cursor})
    assert rows_of(back) == rows_of(second)


def test_list_says_that_nickname_contains_reads_every_member(people, console_a):
    a, _ = people
    response = console_a.get("/console/shop-a/members/", {"q": "li", "search": "nickname_contains"})
    assert rows_of(response) == [a["alice"].pk, a["alina"].pk]
    body = response.content.decode()
    assert body.count('<p class="help" data-help="search">「昵称包含」要逐一比对全部会员，') == 1
    assert '<option value="nickname_contains" selected>' in body


def test_list_shows_masked_phones_and_ignores_bad_input(people, tenant_a, console_a):
    response = console_a.get("/console/shop-a/members/", {"after": "garbage", "seen_within_days": "-3",
                                                          "tag": "999999"})
    assert response.status_code == 200
    assert len(rows_of(response)) == 8
    assert set(response.context["form"].errors) == {"seen_within_days", "tag"}
    body = response.content.decode()
    assert "139****1234" in body and "13900001234" not in body


def test_another_tenants_tag_id_is_not_a_valid_filter(people, tenant_b, console_a):
    with tenant_context(tenant_b):
        tag_b = Tag.objects.create(name="B-only")
    response = console_a.get("/console/shop-a/members/", {"tag": tag_b.pk})
    assert "tag" in response.context["form"].errors
    assert "B-only" not in response.content.decode()


def test_member_page_shows_profile_tags_consent_and_timeline(people, tenant_a, console_a):
    a, _ = people
    bob = a["bob"]
    with tenant_context(tenant_a):
        vip = Tag.objects.create(name="VIP")
        Tag.objects.create(name="新客")
        MemberTag.objects.create(member=bob, tag=vip)
        ConsentEvent.objects.create(member=bob, kind="marketing", granted=False)
        ConsentEvent.objects.filter(member=bob).update(created_at=NOW - 2 * DAY)
        for n in range(105):
            Event.objects.create(event_id=f"e{n}", member=bob, kind="view", ts=NOW - datetime.timedelta(hours=n))
    response = console_a.get(f"/console/shop-a/members/{bob.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "139****1234" in body and "13900001234" not in body
    assert [t.name for t in response.context["member_tags"]] == ["VIP"]
    assert [t.name for t in response.context["other_tags"]] == ["新客"]
    assert [(c.kind, c.granted) for c in response.context["consents"]] == [("marketing", False)]
    entries = response.context["timeline"]
    assert len(entries) == 100
    assert entries[0].at == NOW and entries[0].kind == "event.view"
    assert [e.kind for e in entries].count("consent") == 1  # two days ago, merged in order
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)


def test_timeline_sources_from_other_apps_are_merged(people, tenant_a, console_a):
    a, _ = people

    def orders(member, limit):
        return [TimelineEntry(at=NOW + DAY, kind="order", title="订单已支付", amount_fen=1234)]

    register_source("test-orders", orders)
    try:
        response = console_a.get(f"/console/shop-a/members/{a['alice'].pk}/")
    finally:
        unregister_source("test-orders")
    assert [(e.kind, e.source) for e in response.context["timeline"]] == [("order", "test-orders")]
    assert "¥12.34" in response.content.decode()


def test_another_tenants_member_page_is_404(people, console_a):
    _, b = people
    assert console_a.get(f"/console/shop-a/members/{b['alice'].pk}/").status_code == 404
    assert console_a.get("/console/shop-b/members/").status_code == 404


def test_member_tag_add_and_remove_through_the_page(people, tenant_a, tenant_b, console_a):
    a, b = people
    with tenant_context(tenant_a):
        vip = Tag.objects.create(name="VIP")
    with tenant_context(tenant_b):
        vip_b = Tag.objects.create(name="VIP")
    url = f"/console/shop-a/members/{a['bob'].pk}/tags/"
    assert console_a.post(url, {"tag": vip.pk}).status_code == 302
    assert console_a.post(url, {"tag": vip_b.pk}).status_code == 302  # refused with a message
    assert console_a.post(f"/console/shop-a/members/{b['bob'].pk}/tags/", {"tag": vip.pk}).status_code == 404
    with tenant_context(tenant_a):
        assert list(MemberTag.objects.values_list("member_id", "tag_id")) == [(a["bob"].pk, vip.pk)]
    with tenant_context(tenant_b):
        assert not MemberTag.objects.exists()
    remove = console_a.post(f"/console/shop-a/members/{a['bob'].pk}/tags/{vip.pk}/remove/")
    assert remove.status_code == 302
    with tenant_context(tenant_a):
        assert not MemberTag.objects.exists()


@pytest.mark.parametrize("role", ["owner", "manager", "operator", "analyst"])
def test_every_role_reads_only_analysts_cannot_tag(people, tenant_a, role):
    a, _ = people
    user = make_staff(tenant_a, f"{role}-x", role).user
    client = Client()
    client.force_login(user)
    with tenant_context(tenant_a):
        vip = Tag.objects.create(name="VIP")
    assert client.get("/console/shop-a/members/").status_code == 200
    assert client.get(f"/console/shop-a/members/{a['bob'].pk}/").status_code == 200
    assert client.get("/console/shop-a/members/tags/").status_code == 200
    response = client.post(f"/console/shop-a/members/{a['bob'].pk}/tags/", {"tag": vip.pk})
    assert response.status_code == (403 if role == "analyst" else 302)
    with tenant_context(tenant_a):
        assert MemberTag.objects.count() == (0 if role == "analyst" else 1)


def test_anonymous_is_sent_to_login(people):
    response = Client().get("/console/shop-a/members/")
    assert response.status_code == 302 and "/console/login/" in response["Location"]
