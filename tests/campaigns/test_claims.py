"""Claims and single grants: stock, per-member limit, states, channels, idempotency, isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import actions
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import ClaimCounter, Coupon, CouponTemplate
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.campaigns.conftest import in_threads, make_members, make_template
from tests.fixtures import postgres_only

pytestmark = pytest.mark.django_db


def _state(tenant, template):
    with tenant_context(tenant):
        t = CouponTemplate.objects.get(pk=template.pk)
        return t.issued, Coupon.objects.filter(template=t).count(), ClaimCounter.objects.filter(template=t).count()


def test_claim_issues_a_coupon_valid_from_claim_for_the_set_days(tenant_a, members_a):
    template = make_template(tenant_a, valid_days=7, start_delay_days=1)
    now = timezone.now()
    coupon = actions.claim_coupon(tenant_a, template.pk, members_a[0], now=now).coupon
    assert coupon.state == Coupon.State.UNUSED
    assert coupon.channel == "self_claim"
    assert len(coupon.code) == 16
    assert coupon.valid_from == now + timedelta(days=1)
    assert coupon.valid_until == now + timedelta(days=8)
    assert _state(tenant_a, template) == (1, 1, 1)


def test_fixed_window_coupon_ends_with_the_window(tenant_a, members_a):
    end = timezone.now() + timedelta(days=3)
    template = make_template(tenant_a, valid_days=None, valid_until=end)
    coupon = actions.claim_coupon(tenant_a, template.pk, members_a[0]).coupon
    assert coupon.valid_until == end


def test_stock_runs_out_and_a_refused_claim_leaves_nothing(tenant_a, members_a):
    template = make_template(tenant_a, stock=2)
    actions.claim_coupon(tenant_a, template.pk, members_a[0])
    actions.claim_coupon(tenant_a, template.pk, members_a[1])
    with pytest.raises(CouponError) as exc:
        actions.claim_coupon(tenant_a, template.pk, members_a[2])
    assert exc.value.code == "sold_out"
    assert _state(tenant_a, template) == (2, 2, 2)


def test_per_member_limit_counts_every_channel(tenant_a, members_a, owner_a):
    template = make_template(tenant_a, per_member_limit=2)
    alice = members_a[0]
    actions.claim_coupon(tenant_a, template.pk, alice)
    actions.grant_coupon(tenant_a, template.pk, alice, actor=owner_a, reason="补偿")
    with pytest.raises(CouponError) as exc:
        actions.claim_coupon(tenant_a, template.pk, alice)
    assert exc.value.code == "limit_reached"
    assert _state(tenant_a, template) == (2, 2, 1)
    with tenant_context(tenant_a):
        assert ClaimCounter.objects.get(template=template, member=alice).count == 2


@pytest.mark.parametrize("state", ["draft", "paused", "ended"])
def test_only_active_templates_can_be_claimed(tenant_a, members_a, state):
    template = make_template(tenant_a, activate=False)
    if state != "draft":
        actions.set_template_state(tenant_a, template.pk, "active")
        actions.set_template_state(tenant_a, template.pk, state)
    with pytest.raises(CouponError) as exc:
        actions.claim_coupon(tenant_a, template.pk, members_a[0])
    assert exc.value.code == "not_active"
    assert _state(tenant_a, template) == (0, 0, 0)


def test_a_template_past_its_window_is_not_active(tenant_a, members_a):
    template = make_template(tenant_a, valid_days=None, valid_until=timezone.now() + timedelta(days=1))
    with pytest.raises(CouponError) as exc:
        actions.claim_coupon(tenant_a, template.pk, members_a[0], now=timezone.now() + timedelta(days=2))
    assert exc.value.code == "not_active"


def test_channels_limit_who_may_issue(tenant_a, members_a, owner_a):
    template = make_template(tenant_a, channels=["staff"])
    with pytest.raises(CouponError) as exc:
        actions.claim_coupon(tenant_a, template.pk, members_a[0])
    assert exc.value.code == "channel_not_allowed"
    coupon = actions.grant_coupon(tenant_a, template.pk, members_a[0], actor=owner_a, reason="生日")
    assert coupon.channel == "staff" and coupon.granted_by == owner_a


def test_idempotency_key_returns_the_same_coupon(tenant_a, members_a):
    template = make_template(tenant_a, per_member_limit=5)
    first = actions.claim_coupon(tenant_a, template.pk, members_a[0], idempotency_key="k-1")
    again = actions.claim_coupon(tenant_a, template.pk, members_a[0], idempotency_key="k-1")
    assert (first.created, again.created, again.coupon.pk) == (True, False, first.coupon.pk)
    other = make_template(tenant_a, name="another")
    with pytest.raises(CouponError) as exc:
        actions.claim_coupon(tenant_a, other.pk, members_a[0], idempotency_key="k-1")
    assert exc.value.code == "idempotency_conflict"
    # The key is per member: Bob's "k-1" is his own claim.
    assert actions.claim_coupon(tenant_a, template.pk, members_a[1], idempotency_key="k-1").created
    assert _state(tenant_a, template)[:2] == (2, 2)


def test_another_tenants_template_and_member_are_not_found(tenant_a, tenant_b, members_a, members_b):
    template_b = make_template(tenant_b, name="same name")
    with pytest.raises(NotFound):
        actions.claim_coupon(tenant_a, template_b.pk, members_a[0])
    template_a = make_template(tenant_a, name="same name")
    with pytest.raises(NotFound):
        actions.claim_coupon(tenant_a, template_a.pk, members_b[0])
    assert _state(tenant_b, template_b) == (0, 0, 0)
    assert _state(tenant_a, template_a) == (0, 0, 0)


def test_staff_grant_is_audited_with_who_what_whom_why(tenant_a, members_a, owner_a):
    template = make_template(tenant_a)
    coupon = actions.grant_coupon(tenant_a, template.pk, members_a[1], actor=owner_a, reason="客诉补偿 #42")
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(action="coupon.granted")
    assert event.actor == owner_a
    assert event.target == f"member:{members_a[1].pk}"
    assert event.details == {"openid": "o-bob", "template": template.pk, "coupon": coupon.code,
                             "channel": "staff", "reason": "客诉补偿 #42"}


def test_grant_needs_a_reason(tenant_a, members_a, owner_a):
    from django.core.exceptions import ValidationError

    template = make_template(tenant_a)
    with pytest.raises(ValidationError):
        actions.grant_coupon(tenant_a, template.pk, members_a[0], actor=owner_a, reason=" ")
    assert _state(tenant_a, template) == (0, 0, 0)


def test_new_member_coupon_is_granted_once_after_the_member_is_created(
        tenant_a, tenant_b, owner_a, django_capture_on_commit_callbacks):
    welcome = make_template(tenant_a, name="新人券", kind="instant_off", threshold_fen=0, value=500)
    actions.save_loyalty_settings(tenant_a, actor=owner_a, points_per_yuan=1, tier_basis="points",
                                  new_member_template_id=welcome.pk)
    with django_capture_on_commit_callbacks(execute=True):
        (newcomer,) = make_members(tenant_a, ["o-new"])
        (stranger,) = make_members(tenant_b, ["o-new"])
    assert actions.grant_new_member_coupon(tenant_a, newcomer).pk  # again: the same coupon
    with tenant_context(tenant_a):
        assert list(Coupon.objects.values_list("member__openid", "channel")) == [("o-new", "new_member")]
    with tenant_context(tenant_b):
        assert not Coupon.objects.exists()


# --- PostgreSQL: real concurrency ----------------------------------------------------------------

@pytest.fixture(params=["alone", "batched"])
def claim_path(request, settings):
    """Self-claims decided each in its own transaction, or in batches through Redis."""
    if request.param == "batched" and not settings.REDIS_URL:
        pytest.skip("batched claims need Redis (set REDIS_URL; .ci/run does)")
    settings.CLAIM_BATCHING = request.param == "batched"
    return request.param


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_32_threads_never_oversell_a_100_stock_template(tenant_a, tenant_b, claim_path):
    template = make_template(tenant_a, stock=100, per_member_limit=1)
    members = make_members(tenant_a, [f"o-{i}" for i in range(160)])
    make_members(tenant_b, ["o-0"])

    def claim_five(i):
        outcomes = []
        for member in members[i * 5:(i + 1) * 5]:
            try:
                actions.claim_coupon(tenant_a, template.pk, member)
                outcomes.append("ok")
            except CouponError as exc:
                outcomes.append(exc.code)
        return outcomes

    results, errors = in_threads(32, claim_five)
    assert errors == []
    flat = [o for r in results for o in r]
    assert flat.count("ok") == 100
    assert flat.count("sold_out") == 60
    issued, coupons, counters = _state(tenant_a, template)
    assert (issued, coupons, counters) == (100, 100, 100)
    with tenant_context(tenant_a):
        assert Coupon.objects.values("member").distinct().count() == 100


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_8_parallel_claims_by_one_member_with_limit_1_issue_exactly_one(tenant_a, claim_path):
    template = make_template(tenant_a, stock=50, per_member_limit=1)
    (alice,) = make_members(tenant_a, ["o-alice"])

    def claim(i):
        try:
            return actions.claim_coupon(tenant_a, template.pk, alice).coupon.pk
        except CouponError as exc:
            return exc.code

    results, errors = in_threads(8, claim)
    assert errors == []
    assert results.count("limit_reached") == 7
    assert _state(tenant_a, template) == (1, 1, 1)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_8_parallel_retries_with_one_idempotency_key_issue_one_coupon(tenant_a, claim_path):
    template = make_template(tenant_a, stock=50, per_member_limit=3)
    (alice,) = make_members(tenant_a, ["o-alice"])

    def claim(i):
        return actions.claim_coupon(tenant_a, template.pk, alice, idempotency_key="tap-1").coupon.pk

    results, errors = in_threads(8, claim)
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 8
    assert _state(tenant_a, template) == (1, 1, 1)


# --- one statement on PostgreSQL, the ORM path elsewhere: the same answers --------------------------

@pytest.mark.parametrize("shape", [
    {"valid_days": 7, "start_delay_days": 2},
    {"valid_days": 30, "valid_until_in": timedelta(days=5)},  # the template's window ends first
    {"valid_days": None, "valid_from_in": timedelta(days=3), "valid_until_in": timedelta(days=9)},
    {"valid_days": None, "valid_from_in": -timedelta(days=1), "valid_until_in": timedelta(days=10)},
])
def test_a_claimed_coupon_is_valid_exactly_as_validity_for_says(tenant_a, members_a, shape):
    now = timezone.now().replace(microsecond=0)
    fields = {"valid_days": shape["valid_days"], "start_delay_days": shape.get("start_delay_days", 0)}
    for name in ("valid_from", "valid_until"):
        if shape.get(f"{name}_in") is not None:
            fields[name] = now + shape[f"{name}_in"]
    template = make_template(tenant_a, **fields)
    coupon = actions.claim_coupon(tenant_a, template.pk, members_a[0], now=now).coupon
    expected = actions.coupons.validity_for(template, now)
    with tenant_context(tenant_a):
        stored = Coupon.objects.get(pk=coupon.pk)
    assert (coupon.valid_from, coupon.valid_until) == expected
    assert (stored.valid_from, stored.valid_until, stored.claimed_at) == (*expected, now)


@pytest.mark.parametrize(("setup", "code"), [
    ({"stock": 1}, "sold_out"),
    ({"per_member_limit": 1}, "limit_reached"),
    ({"channels": ["staff"]}, "channel_not_allowed"),
])
def test_a_refused_claim_inside_an_open_unit_of_work_changes_nothing(tenant_a, members_a, setup, code):
    template = make_template(tenant_a, **setup)
    first = members_a[0] if code != "channel_not_allowed" else None
    if first is not None:
        actions.claim_coupon(tenant_a, template.pk, first)
    claimant = members_a[1] if code == "sold_out" else members_a[0]
    before = _state(tenant_a, template)
    with tenant_context(tenant_a):
        with pytest.raises(CouponError) as exc:
            actions.claim_coupon(tenant_a, template.pk, claimant)
        # The unit of work goes on (no aborted transaction), and nothing of the refusal is left in it.
        counted = dict(ClaimCounter.objects.filter(template=template).values_list("member_id", "count"))
        issued = CouponTemplate.objects.get(pk=template.pk).issued
        held = Coupon.objects.filter(template=template).count()
    assert exc.value.code == code
    assert {m: n for m, n in counted.items() if n} == ({first.pk: 1} if first else {})
    assert (issued, held) == before[:2]


def test_a_replayed_key_answers_the_first_coupon_with_its_template(tenant_a, tenant_b, members_a, members_b):
    template = make_template(tenant_a, per_member_limit=3)
    first = actions.claim_coupon(tenant_a, template.pk, members_a[0], idempotency_key="tap").coupon
    again = actions.claim_coupon(tenant_a, template.pk, members_a[0], idempotency_key="tap")
    assert (again.created, again.coupon.pk, again.coupon.code, again.coupon.template.name) == (
        False, first.pk, first.code, template.name)
    # Tenant B's look-alike member with the same key claims a coupon of its own tenant, untouched by A's.
    template_b = make_template(tenant_b, per_member_limit=3)
    other = actions.claim_coupon(tenant_b, template_b.pk, members_b[0], idempotency_key="tap")
    assert other.created and other.coupon.pk != first.pk
    assert _state(tenant_a, template) == (1, 1, 1)
    assert _state(tenant_b, template_b) == (1, 1, 1)


@postgres_only
def test_a_claim_is_one_round_trip_inside_the_callers_unit_of_work(tenant_a, members_a):
    from django.test.utils import CaptureQueriesContext

    template = make_template(tenant_a, stock=10)
    with tenant_context(tenant_a):
        with CaptureQueriesContext(connection) as claimed:
            result = actions.claim_coupon(tenant_a, template.pk, members_a[0], idempotency_key="k")
        with CaptureQueriesContext(connection) as replayed:
            actions.claim_coupon(tenant_a, template.pk, members_a[0], idempotency_key="k")
    assert result.created and result.coupon.template.remaining == 9
    assert len(claimed.captured_queries) == 1
    assert len(replayed.captured_queries) == 2  # the statement finds the key; then the coupon is read


def test_the_claim_statement_is_prepared_on_the_server_once_per_connection(tenant_a, members_a):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL path")
    template = make_template(tenant_a, stock=10)
    for member in members_a[:3]:
        actions.claim_coupon(tenant_a, template.pk, member)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), max(generic_plans + custom_plans) FROM pg_prepared_statements "
                       "WHERE statement LIKE '%%INSERT INTO campaigns_claimcounter%%'")
        assert cursor.fetchone() == (1, 3)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_failing_one_round_trip_statement_keeps_nothing_and_leaves_the_connection_usable(tenant_a):
    from django.db import DatabaseError

    from tenants.prepared import execute_alone

    template = make_template(tenant_a, stock=10)
    with pytest.raises(DatabaseError):
        # The UPDATE runs, then the division fails: the pipeline's COMMIT must not keep the update.
        execute_alone(tenant_a.pk, "WITH t AS (UPDATE campaigns_coupontemplate SET issued = issued + 1 "
                                   "WHERE id = %(id)s RETURNING issued) SELECT 1 / (SELECT issued - 1 FROM t)",
                      {"id": template.pk})
    assert execute_alone(tenant_a.pk, "SELECT issued FROM campaigns_coupontemplate WHERE id = %(id)s",
                         {"id": template.pk}) == (0,)
    # Another tenant's row is invisible to a statement run for tenant A (the setting was applied).
    assert execute_alone(tenant_a.pk + 10_000, "SELECT count(*) FROM campaigns_coupontemplate", {}) == (0,)
