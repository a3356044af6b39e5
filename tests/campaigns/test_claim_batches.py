"""Self-claims committed in batches through Redis: the same answers as claims alone, the database the
truth, and a leader that dies or a Redis that goes away costs no coupon twice and none lost."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from campaigns import actions
from campaigns.actions import claim_batches
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import ClaimCounter, Coupon, CouponTemplate, new_coupon_code
from profiles import actions as profile_actions
from profiles import tokens
from profiles.queries import MemberNotFound
from tenants.context import tenant_context
from tests.campaigns.conftest import in_threads, make_members, make_template
from tests.fixtures import postgres_only

pytestmark = [postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _batching(settings):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (set REDIS_URL; .ci/run does)")
    settings.CLAIM_BATCHING = True
    claim_batches._client.cache_clear()
    claim_batches._scripts.cache_clear()
    yield
    claim_batches._client.cache_clear()
    claim_batches._scripts.cache_clear()


@pytest.fixture
def batches_run(monkeypatch):
    """How many batches ran, and of how many claims each (the real function, counted)."""
    sizes: list[int] = []
    real = claim_batches.decide_batch

    def counted(tenant_id, template_id, batch):
        sizes.append(len(batch))
        return real(tenant_id, template_id, batch)

    monkeypatch.setattr(claim_batches, "decide_batch", counted)
    return sizes


def _state(tenant, template):
    with tenant_context(tenant):
        t = CouponTemplate.objects.get(pk=template.pk)
        counters = dict(ClaimCounter.objects.filter(template=t).values_list("member_id", "count"))
        return t.issued, Coupon.objects.filter(template=t).count(), counters


def _client():
    return claim_batches._client()


def _keys(tenant, template):
    return claim_batches._Keys.of(tenant.pk, template.pk)


def _items(claims, now=None):
    """Queue items for (member, key) pairs, as claimants would queue them: (ticket, code, item) each."""
    now = now or timezone.now()
    out = []
    for member, key in claims:
        ticket, code = secrets.token_hex(8), new_coupon_code()
        out.append((ticket, code, claim_batches.claim_item(ticket, member.pk, key=key, code=code, now=now)))
    return out


def _decide(tenant, template, items):
    answers = claim_batches.decide_batch(tenant.pk, template.pk, [i[2].encode() for i in items])
    return [json.loads(answers[ticket]) for ticket, _code, _item in items]


# --- one claim, through the queue -----------------------------------------------------------------

def test_a_self_claim_goes_through_a_batch_and_answers_like_a_claim_alone(tenant_a, batches_run):
    template = make_template(tenant_a, valid_days=7, start_delay_days=1, stock=10)
    (alice,) = make_members(tenant_a, ["o-alice"])
    now = timezone.now()
    result = actions.claim_coupon(tenant_a, template.pk, alice, now=now)
    assert batches_run == [1]
    coupon = result.coupon
    assert result.created is True
    assert (coupon.state, coupon.channel, len(coupon.code)) == ("unused", "self_claim", 16)
    assert (coupon.valid_from, coupon.valid_until) == (now + timedelta(days=1), now + timedelta(days=8))
    assert (coupon.template.pk, coupon.template.issued, coupon.template.remaining) == (template.pk, 1, 9)
    with tenant_context(tenant_a):
        stored = Coupon.objects.get(pk=coupon.pk)
    assert (stored.code, stored.member_id, stored.claimed_at, stored.valid_from, stored.valid_until) == (
        coupon.code, alice.pk, now, coupon.valid_from, coupon.valid_until)
    assert _state(tenant_a, template) == (1, 1, {alice.pk: 1})
    assert _client().keys(claim_batches.key_prefix() + "*") == []  # nothing left behind


def test_refusals_through_batches_carry_the_contract_codes(tenant_a, batches_run):
    template = make_template(tenant_a, stock=2, per_member_limit=1)
    paused = make_template(tenant_a)
    actions.set_template_state(tenant_a, paused.pk, "paused")
    staff_only = make_template(tenant_a, channels=["staff"])
    alice, bob, carol = make_members(tenant_a, ["o-alice", "o-bob", "o-carol"])
    actions.claim_coupon(tenant_a, template.pk, alice)
    codes = []
    for template_id, member in ((template.pk, alice), (template.pk, bob), (template.pk, carol),
                                (paused.pk, alice), (staff_only.pk, bob)):
        if member is bob and template_id == template.pk:
            actions.claim_coupon(tenant_a, template_id, member)
            continue
        with pytest.raises(CouponError) as exc:
            actions.claim_coupon(tenant_a, template_id, member)
        codes.append(exc.value.code)
    assert codes == ["limit_reached", "sold_out", "not_active", "channel_not_allowed"]
    assert len(batches_run) == 6
    assert _state(tenant_a, template) == (2, 2, {alice.pk: 1, bob.pk: 1})
    with tenant_context(tenant_a):
        assert not ClaimCounter.objects.filter(template__in=[paused.pk, staff_only.pk]).exists()


def test_an_idempotency_key_replays_across_batches_and_conflicts_across_templates(tenant_a):
    first_template, other = make_template(tenant_a, per_member_limit=3), make_template(tenant_a)
    (alice,) = make_members(tenant_a, ["o-alice"])
    first = actions.claim_coupon(tenant_a, first_template.pk, alice, idempotency_key="tap-1")
    again = actions.claim_coupon(tenant_a, first_template.pk, alice, idempotency_key="tap-1")
    assert (first.created, again.created, again.coupon.pk, again.coupon.code) == (
        True, False, first.coupon.pk, first.coupon.code)
    with pytest.raises(CouponError) as exc:
        actions.claim_coupon(tenant_a, other.pk, alice, idempotency_key="tap-1")
    assert (exc.value.code, exc.value.details) == ("idempotency_conflict", {"coupon_id": first.coupon.pk})
    assert _state(tenant_a, first_template)[:2] == (1, 1)


def test_another_tenants_template_is_not_found_and_untouched(tenant_a, tenant_b):
    template_b = make_template(tenant_b, stock=5)
    (alice,) = make_members(tenant_a, ["o-alice"])
    make_members(tenant_b, ["o-alice"])
    with pytest.raises(NotFound):
        actions.claim_coupon(tenant_a, template_b.pk, alice)
    with pytest.raises(NotFound):
        actions.claim_coupon(tenant_a, 999_999, alice)
    assert _state(tenant_b, template_b) == (0, 0, {})
    with tenant_context(tenant_a):
        assert not ClaimCounter.objects.exists() and not Coupon.objects.exists()


def test_an_erased_member_claims_nothing(tenant_a):
    template = make_template(tenant_a)
    (alice,) = make_members(tenant_a, ["o-alice"])
    profile_actions.erase_member(tenant_a, member=alice)
    with pytest.raises(MemberNotFound):
        actions.claim_coupon(tenant_a, template.pk, alice)
    assert _state(tenant_a, template) == (0, 0, {})


def test_http_claim_through_a_batch_answers_201_then_409(tenant_a, tenant_b, batches_run):
    template = make_template(tenant_a, stock=1)
    template_b = make_template(tenant_b)
    alice, bob = make_members(tenant_a, ["o-alice", "o-bob"])

    def post(template_id, member):
        token = tokens.issue(member.tenant_id, member.pk, tokens.ACCESS)
        response = Client().post(f"/api/v1/coupons/{template_id}/claim", HTTP_AUTHORIZATION=f"Bearer {token}")
        return response.status_code, json.loads(response.content)

    status, body = post(template.pk, alice)
    assert status == 201
    assert (body["template"]["id"], body["template"]["remaining"], body["state"]) == (template.pk, 0, "unused")
    with tenant_context(tenant_a):
        assert Coupon.objects.get(code=body["code"]).pk == body["id"]
    assert post(template.pk, bob)[1]["error"]["code"] == "sold_out"
    assert post(template_b.pk, bob) == (404, {"error": {"code": "not_found", "message": "No such coupon.",
                                                        "details": {}}})
    assert len(batches_run) == 3


# --- a batch decides in queue order, as claims alone would -----------------------------------------

def test_a_batch_gives_the_last_stock_to_the_first_in_the_queue(tenant_a):
    template = make_template(tenant_a, stock=3)
    members = make_members(tenant_a, [f"o-{i}" for i in range(5)])
    answers = _decide(tenant_a, template, _items([(m, "") for m in members]))
    assert [a["s"] for a in answers] == ["ok", "ok", "ok", "refused", "refused"]
    assert [a["code"] for a in answers[3:]] == ["sold_out", "sold_out"]
    assert _state(tenant_a, template) == (3, 3, {m.pk: 1 for m in members[:3]})


def test_a_batch_holds_the_per_member_limit_and_answers_a_repeated_key_once(tenant_a):
    template = make_template(tenant_a, per_member_limit=2)
    alice, bob = make_members(tenant_a, ["o-alice", "o-bob"])
    items = _items([(alice, ""), (alice, "tap"), (alice, "tap"), (alice, ""), (bob, "")])
    answers = _decide(tenant_a, template, items)
    assert [a["s"] for a in answers] == ["ok", "ok", "ok", "refused", "ok"]
    assert (answers[1]["created"], answers[2]["created"]) == (True, False)
    assert (answers[2]["id"], answers[2]["code"]) == (answers[1]["id"], items[1][1])
    assert (answers[3]["code"], answers[3]["details"]) == ("limit_reached", {"limit": 2})
    assert _state(tenant_a, template) == (3, 3, {alice.pk: 2, bob.pk: 1})


def test_a_claim_queued_twice_is_decided_once(tenant_a):
    template = make_template(tenant_a, per_member_limit=1)
    (alice,) = make_members(tenant_a, ["o-alice"])
    (item,) = _items([(alice, "")])
    answers = claim_batches.decide_batch(tenant_a.pk, template.pk, [item[2].encode(), item[2].encode()])
    assert list(answers) == [item[0]]
    assert (json.loads(answers[item[0]])["s"], json.loads(answers[item[0]])["code"]) == ("ok", item[1])
    assert _state(tenant_a, template) == (1, 1, {alice.pk: 1})


def test_a_batch_of_refusals_leaves_no_counter_behind(tenant_a):
    template = make_template(tenant_a, stock=0)
    alice, bob = make_members(tenant_a, ["o-alice", "o-bob"])
    answers = _decide(tenant_a, template, _items([(alice, ""), (bob, "")]))
    assert [a["code"] for a in answers] == ["sold_out", "sold_out"]
    assert _state(tenant_a, template) == (0, 0, {})


def test_a_batch_run_again_after_it_committed_issues_nothing_twice(tenant_a):
    template = make_template(tenant_a, stock=2)
    members = make_members(tenant_a, ["o-alice", "o-bob", "o-carol"])
    items = _items([(m, "") for m in members])
    first = _decide(tenant_a, template, items)
    again = _decide(tenant_a, template, items)
    assert [(a["s"], a.get("id")) for a in again[:2]] == [("ok", first[0]["id"]), ("ok", first[1]["id"])]
    assert [a["created"] for a in again[:2]] == [True, True]
    assert (again[2]["s"], again[2]["code"]) == ("refused", "sold_out")
    assert _state(tenant_a, template) == (2, 2, {members[0].pk: 1, members[1].pk: 1})


def test_two_runs_of_one_batch_at_once_insert_each_coupon_once(tenant_a):
    template = make_template(tenant_a, stock=100)
    members = make_members(tenant_a, [f"o-{i}" for i in range(40)])
    items = _items([(m, "") for m in members])
    answers, errors = in_threads(2, lambda _i: _decide(tenant_a, template, items))
    assert errors == []
    assert len(answers) == 2
    for run_answers in answers:
        assert {a["s"] for a in run_answers} <= {"ok", "lookup"}
    assert _state(tenant_a, template) == (40, 40, {m.pk: 1 for m in members})


# --- leaders that die, Redis that goes away -------------------------------------------------------

def test_a_dead_leaders_batch_is_run_by_the_next_claimant_and_answered(tenant_a, batches_run):
    template = make_template(tenant_a, stock=10)
    alice, bob, carol = make_members(tenant_a, ["o-alice", "o-bob", "o-carol"])
    keys = _keys(tenant_a, template)
    stranded = _items([(alice, ""), (bob, "")])
    # A leader took these two into its batch and died before answering: no lead, the batch in flight.
    _client().rpush(keys.slots[0][0], *[i[2] for i in stranded])
    result = actions.claim_coupon(tenant_a, template.pk, carol)
    assert result.created and batches_run == [2, 1]
    for ticket, code, _item in stranded:
        (answer,) = [json.loads(v) for v in _client().lrange(keys.reply_prefix + ticket, 0, -1)]
        assert (answer["s"], answer["code"]) == ("ok", code)
    assert _state(tenant_a, template) == (3, 3, {alice.pk: 1, bob.pk: 1, carol.pk: 1})


def test_a_dead_leaders_committed_batch_is_answered_without_issuing_again(tenant_a, batches_run):
    template = make_template(tenant_a, stock=10)
    alice, bob = make_members(tenant_a, ["o-alice", "o-bob"])
    keys = _keys(tenant_a, template)
    stranded = _items([(alice, "")])
    committed = _decide(tenant_a, template, stranded)  # it died after its commit, before answering
    _client().rpush(keys.slots[0][0], stranded[0][2])
    actions.claim_coupon(tenant_a, template.pk, bob)
    (answer,) = [json.loads(v) for v in _client().lrange(keys.reply_prefix + stranded[0][0], 0, -1)]
    assert (answer["s"], answer["id"], answer["created"]) == ("ok", committed[0]["id"], True)
    assert _state(tenant_a, template) == (2, 2, {alice.pk: 1, bob.pk: 1})


def test_a_claim_nobody_answers_gives_up_withdrawn_and_http_says_503(tenant_a, monkeypatch):
    template = make_template(tenant_a)
    (alice,) = make_members(tenant_a, ["o-alice"])
    keys = _keys(tenant_a, template)
    monkeypatch.setattr(claim_batches, "GIVE_UP_SECONDS", 0.6)
    monkeypatch.setattr(claim_batches, "POLL_SECONDS", 0.2)
    for _inflight, lead in keys.slots:
        _client().set(lead, "a-leader-that-hangs", px=60_000)
    with pytest.raises(claim_batches.ClaimsUnavailable):
        actions.claim_coupon(tenant_a, template.pk, alice)
    assert _client().llen(keys.queue) == 0  # withdrawn: no later batch issues it
    token = tokens.issue(tenant_a.pk, alice.pk, tokens.ACCESS)
    response = Client().post(f"/api/v1/coupons/{template.pk}/claim", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert json.loads(response.content)["error"]["code"] == "claims_unavailable"
    assert _state(tenant_a, template) == (0, 0, {})


def test_with_redis_refusing_connections_a_claim_is_decided_alone(tenant_a, settings, batches_run):
    template = make_template(tenant_a, stock=1)
    alice, bob = make_members(tenant_a, ["o-alice", "o-bob"])
    with socket_nobody_listens_on() as url:
        settings.REDIS_URL = url
        claim_batches._client.cache_clear()
        claim_batches._scripts.cache_clear()
        assert actions.claim_coupon(tenant_a, template.pk, alice).created
        with pytest.raises(CouponError) as exc:
            actions.claim_coupon(tenant_a, template.pk, bob)
    assert exc.value.code == "sold_out" and batches_run == []
    assert _state(tenant_a, template) == (1, 1, {alice.pk: 1})


class socket_nobody_listens_on:
    def __enter__(self) -> str:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return f"redis://127.0.0.1:{self._sock.getsockname()[1]}/0"

    def __exit__(self, *exc) -> None:
        self._sock.close()


# --- real concurrency: batches, claims alone and grants side by side -------------------------------

def test_32_threads_of_batched_claims_and_staff_grants_never_oversell(tenant_a, tenant_b, owner_a, batches_run):
    template = make_template(tenant_a, stock=100, per_member_limit=1, channels=["self_claim", "staff"])
    members = make_members(tenant_a, [f"o-{i}" for i in range(160)])
    make_members(tenant_b, ["o-0"])
    def work(i):
        outcomes = []
        for member in members[i * 5:(i + 1) * 5]:
            try:
                if i % 4 == 0:  # a staff grant: the claim-alone path, on the same rows
                    actions.grant_coupon(tenant_a, template.pk, member, actor=owner_a, reason="补发")
                else:
                    actions.claim_coupon(tenant_a, template.pk, member)
                outcomes.append("ok")
            except CouponError as exc:
                outcomes.append(exc.code)
        return outcomes

    results, errors = in_threads(32, work)
    outcomes = [o for r in results for o in r]
    assert errors == []
    assert (outcomes.count("ok"), outcomes.count("sold_out"), len(outcomes)) == (100, 60, 160)
    issued, coupons, counters = _state(tenant_a, template)
    assert (issued, coupons, len(counters), set(counters.values())) == (100, 100, 100, {1})
    assert sum(batches_run) == 120 and len(batches_run) < 120  # some claims did share a batch
    assert _client().keys(claim_batches.key_prefix() + "*") == []
