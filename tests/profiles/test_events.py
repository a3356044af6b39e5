"""POST /api/v1/events: per-event validation, exact counts, dedupe within and across batches and tenants."""

from __future__ import annotations

import datetime as dt
import json
import threading
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from catalog.models import Category, Item
from profiles import ingest
from profiles.models import Event, Member
from tenants.context import tenant_context
from tests.fixtures import postgres_only
from tests.profiles.conftest import auth, make_member

pytestmark = pytest.mark.django_db


def add_items(tenant, *skus, active=True):
    with tenant_context(tenant):
        category, _ = Category.objects.get_or_create(name="Coffee")
        return [Item.objects.create(sku=sku, name=sku, category=category, price_fen=1000, active=active)
                for sku in skus]


def stored(member):
    with tenant_context(member.tenant):
        return {e.event_id: e for e in Event.objects.filter(member=member).select_related("item")}


def now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


def iso(delta: dt.timedelta = dt.timedelta()) -> str:
    return (timezone.now() + delta).astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()


def post(api, member, events, **extra):
    return api.call("POST", "events", {"events": events}, **auth(member), **extra)


def test_mixed_batch_gives_exact_counts_and_stores_exactly_the_good_ones(api, member_a, member_b):
    add_items(member_a.tenant, "LATTE")
    add_items(member_a.tenant, "OLD", active=False)
    add_items(member_b.tenant, "ONLY-IN-B")
    events = [
        {"event_id": "g1", "kind": "view", "ts": now_ms(), "sku": "LATTE", "props": {"page": "home"}},  # 0 ok
        {"event_id": "g2", "kind": "purchase", "ts": iso(), "sku": "OLD",                                 # 1 ok
         "props": {"amount_fen": 2800, "items": [{"sku": "LATTE", "qty": 2}]}},
        {"event_id": "g1", "kind": "click", "ts": now_ms()},                                             # 2 dup
        {"event_id": "b1", "kind": "teleport", "ts": now_ms()},                                          # 3
        {"event_id": "b2", "kind": "view", "ts": iso(dt.timedelta(minutes=6))},                         # 4
        {"event_id": "b3", "kind": "view", "ts": iso(-dt.timedelta(days=31))},                          # 5
        {"event_id": "b4", "kind": "view", "ts": "2026-11-28T10:00:00"},                                # 6
        {"event_id": "b5", "kind": "view", "ts": now_ms(), "sku": "ONLY-IN-B"},                          # 7
        {"event_id": "b6", "kind": "view", "ts": now_ms(), "props": [1, 2]},                             # 8
        {"event_id": "b7", "kind": "view", "ts": now_ms(), "props": {"blob": "x" * 5000}},               # 9
        {"event_id": "", "kind": "view", "ts": now_ms()},                                                # 10
        {"event_id": "x" * 65, "kind": "view", "ts": now_ms()},                                          # 11
        {"event_id": "b8", "kind": "purchase", "ts": now_ms(), "props": {"amount_fen": "12.00"}},       # 12
        "not an object",                                                                                 # 13
        {"kind": "view", "ts": now_ms()},                                                                # 14
        {"event_id": "b9", "kind": "view", "ts": True},                                                  # 15
        {"event_id": "g3", "kind": "share", "ts": iso(-dt.timedelta(days=29))},                              # 16 ok
        {"event_id": "b10", "kind": "view", "ts": now_ms(), "props": {"bad": "\u0000"}},                 # 17
        {"event_id": "b11", "kind": "purchase", "ts": now_ms(),                                          # 18
         "props": {"amount_fen": 100, "items": [{"sku": "NOPE"}]}},
    ]
    status, body, _ = post(api, member_a, events)
    assert status == 200, body
    codes = {r["index"]: r["code"] for r in body["rejected"]}
    assert codes == {
        3: "invalid_kind", 4: "ts_in_future", 5: "ts_too_old", 6: "invalid_ts", 7: "unknown_sku",
        8: "invalid_props", 9: "props_too_large", 10: "invalid_event_id", 11: "invalid_event_id",
        12: "invalid_amount", 13: "invalid_event", 14: "invalid_event_id", 15: "invalid_ts",
        17: "invalid_props", 18: "unknown_sku",
    }
    assert [r["index"] for r in body["rejected"]] == sorted(codes)
    assert (body["accepted"], body["duplicates"]) == (3, 1)
    assert body["accepted"] + body["duplicates"] + len(body["rejected"]) == len(events)

    rows = stored(member_a)
    assert set(rows) == {"g1", "g2", "g3"}
    assert rows["g1"].kind == "view" and rows["g1"].item.sku == "LATTE" and rows["g1"].props == {"page": "home"}
    assert rows["g2"].amount_fen == 2800 and rows["g2"].item.sku == "OLD"
    assert rows["g2"].props["items"] == [{"sku": "LATTE", "qty": 2}]
    assert rows["g3"].item_id is None and rows["g3"].amount_fen is None
    assert stored(member_b) == {}


def test_timestamps_are_stored_as_the_instant_given(api, member_a):
    ms = 1_790_000_000_123
    now = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    from profiles import actions

    body = json.dumps({"events": [
        {"event_id": "ms", "kind": "view", "ts": ms},
        {"event_id": "iso", "kind": "view", "ts": "2026-09-21T22:13:20.123456+08:00"},
        {"event_id": "z", "kind": "view", "ts": "2026-09-21T14:13:20Z"},
    ]}).encode()
    with tenant_context(member_a.tenant):
        result = actions.record_events(member_a.tenant, body, member=member_a, now=now)
    assert (result.accepted, result.rejected) == (3, [])
    rows = stored(member_a)
    assert rows["ms"].ts == dt.datetime(2026, 9, 21, 14, 13, 20, 123000, tzinfo=dt.UTC)
    assert rows["iso"].ts == dt.datetime(2026, 9, 21, 14, 13, 20, 123456, tzinfo=dt.UTC)
    assert rows["z"].ts == dt.datetime(2026, 9, 21, 14, 13, 20, tzinfo=dt.UTC)


def test_resent_batch_stores_nothing_new(api, member_a):
    events = [{"event_id": f"e{i}", "kind": "view", "ts": now_ms()} for i in range(20)]
    assert post(api, member_a, events)[1] == {"accepted": 20, "duplicates": 0, "rejected": []}
    assert post(api, member_a, events)[1] == {"accepted": 0, "duplicates": 20, "rejected": []}
    more = events[:5] + [{"event_id": "e-new", "kind": "click", "ts": now_ms()}]
    assert post(api, member_a, more)[1] == {"accepted": 1, "duplicates": 5, "rejected": []}
    assert len(stored(member_a)) == 21


def test_same_event_ids_in_two_tenants_are_both_kept(api, member_a, member_b):
    events = [{"event_id": "shared-1", "kind": "view", "ts": now_ms()}]
    assert post(api, member_a, events)[1]["accepted"] == 1
    assert post(api, member_b, events)[1]["accepted"] == 1
    assert set(stored(member_a)) == set(stored(member_b)) == {"shared-1"}


def test_an_event_id_seen_from_another_member_is_a_duplicate(api, member_a, tenant_a):
    other = make_member(tenant_a, "o_other_member")
    events = [{"event_id": "once", "kind": "view", "ts": now_ms()}]
    post(api, member_a, events)
    assert post(api, other, events)[1] == {"accepted": 0, "duplicates": 1, "rejected": []}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"events": [{"event_id": f"e{i}", "kind": "view", "ts": 0} for i in range(501)]}, "batch_too_large"),
        ({"events": {"event_id": "x"}}, "invalid_batch"),
        ({"items": []}, "invalid_batch"),
        ([], "invalid_batch"),
        (b"{not json", "malformed_json"),
    ],
)
def test_whole_batch_refusals_store_nothing(api, member_a, body, code):
    status, answer, _ = api.call("POST", "events", body, **auth(member_a))
    assert (status, answer["error"]["code"]) == (400, code)
    assert stored(member_a) == {}


def test_a_full_batch_of_500_is_accepted(api, member_a):
    events = [{"event_id": f"full-{i}", "kind": "view", "ts": now_ms()} for i in range(500)]
    assert post(api, member_a, events)[1] == {"accepted": 500, "duplicates": 0, "rejected": []}


def test_empty_batch_and_wrong_content_type(api, member_a):
    assert post(api, member_a, [])[1] == {"accepted": 0, "duplicates": 0, "rejected": []}
    response = api.client.post("/api/v1/events", "events=1", content_type="application/x-www-form-urlencoded",
                               **auth(member_a))
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_events_need_a_token_and_mark_the_member_seen(api, member_a):
    events = [{"event_id": "seen", "kind": "view", "ts": now_ms()}]
    assert api.call("POST", "events", {"events": events})[0] == 401
    assert stored(member_a) == {}
    post(api, member_a, events)
    with tenant_context(member_a.tenant):
        assert Member.objects.get(pk=member_a.pk).last_seen_at is not None


def test_the_batch_decoder_and_the_schema_agree_on_limits():
    assert ingest.MAX_EVENTS == 500
    assert ingest.KINDS == {"view", "click", "share", "add_to_cart", "purchase", "coupon_claim", "coupon_use",
                            "push_open"}


# --- concurrency (PostgreSQL) -------------------------------------------------------------------------


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_eight_clients_posting_the_same_batch_store_each_event_once(tenant_a):
    member = make_member(tenant_a, "o_concurrent")
    add_items(tenant_a, "LATTE")
    events = [{"event_id": f"c-{i:03d}", "kind": "view", "ts": now_ms(), "sku": "LATTE"} for i in range(300)]
    payload = json.dumps({"events": events})
    answers: list[tuple[int, dict]] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        try:
            barrier.wait(timeout=10)
            response = Client().post("/api/v1/events", payload, content_type="application/json", **auth(member))
            answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [status for status, _ in answers] == [200] * 8
    assert sum(body["accepted"] for _, body in answers) == 300
    assert sum(body["duplicates"] for _, body in answers) == 300 * 7
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT event_id) FROM profiles_event")
        assert cursor.fetchone() == (300, 300)


def test_props_limits_are_exact(api, member_a):
    def props_of_size(size: int) -> dict:
        return {"p": "x" * (size - len('{"p":""}'))}

    assert len(json.dumps(props_of_size(4095), separators=(",", ":"))) == 4095
    body = ('{"events":['
            f'{{"event_id":"max","kind":"view","ts":{now_ms()},"props":{json.dumps(props_of_size(4095), separators=(",", ":"))}}},'
            f'{{"event_id":"over","kind":"view","ts":{now_ms()},"props":{json.dumps(props_of_size(4096), separators=(",", ":"))}}},'
            f'{{"event_id":"text","kind":"view","ts":{now_ms()},"props":{{"note":"a \\\\u0000 written out"}}}}'
            "]}")
    status, answer, _ = api.call("POST", "events", body, **auth(member_a))
    assert status == 200
    assert answer == {"accepted": 2, "duplicates": 0,
                      "rejected": [{"index": 1, "code": "props_too_large", "message": mock.ANY}]}
    assert stored(member_a)["text"].props == {"note": "a \\u0000 written out"}
