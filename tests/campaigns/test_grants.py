"""Bulk grants: pasted openids, tier/tag filters, limits, stock, idempotent chunks, isolation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns import actions
from campaigns.exceptions import CouponError
from campaigns.models import ClaimCounter, Coupon, CouponTemplate, GrantJob
from profiles.models import Member, MemberTag, Tag
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.campaigns.conftest import make_members, make_template
from tests.fixtures import postgres_only

pytestmark = pytest.mark.django_db


def _job(tenant, job):
    with tenant_context(tenant):
        return GrantJob.objects.get(pk=job.pk)


def _holders(tenant, template):
    with tenant_context(tenant):
        return sorted(Coupon.objects.filter(template=template).values_list("member__openid", flat=True))


def test_parse_openids_keeps_order_and_drops_duplicates_and_blanks():
    text = 'o-1\n o-2 , o-1\n\n"o-3"\to-2'
    assert actions.parse_openids(text) == ["o-1", "o-2", "o-3"]


def test_pasted_openids_grant_once_each_and_report_unknowns(
        tenant_a, tenant_b, members_a, members_b, owner_a, django_capture_on_commit_callbacks):
    template = make_template(tenant_a, per_member_limit=1)
    actions.claim_coupon(tenant_a, template.pk, members_a[2])  # carol already holds one
    with django_capture_on_commit_callbacks(execute=True):
        job = actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="门店活动",
                                      openids=["o-alice", "o-bob", "o-carol", "o-nobody", "o-alice"])
    job = _job(tenant_a, job)
    assert (job.state, job.total, job.processed, job.granted, job.skipped_limit, job.not_found) == (
        "done", 4, 4, 2, 1, 1)
    assert job.percent == 100
    assert _holders(tenant_a, template) == ["o-alice", "o-bob", "o-carol"]
    assert _holders(tenant_b, template) == []  # same openids in tenant B: untouched
    with tenant_context(tenant_a):
        assert CouponTemplate.objects.get(pk=template.pk).issued == 3
        granted = Coupon.objects.filter(template=template, channel="staff")
        assert {c.granted_by_id for c in granted} == {owner_a.pk}
        assert {c.idempotency_key for c in granted} == {job.idempotency_key}
        actions_logged = list(AuditEvent.objects.filter(action__startswith="coupon.bulk_grant")
                              .order_by("id").values_list("action", "details__reason"))
    assert actions_logged == [("coupon.bulk_grant_started", "门店活动"), ("coupon.bulk_grant_finished", "门店活动")]


def test_tier_and_tag_filter_in_chunks_with_stock_running_out(tenant_a, tenant_b, owner_a):
    gold = make_members(tenant_a, [f"g-{i}" for i in range(7)], tier="金卡")
    make_members(tenant_a, ["s-1", "s-2"], tier="银卡")
    make_members(tenant_b, [f"g-{i}" for i in range(7)], tier="金卡")
    with tenant_context(tenant_a):
        vip = Tag.objects.create(name="VIP")
        for m in gold[:5]:
            MemberTag.objects.create(member=m, tag=vip)
    template = make_template(tenant_a, stock=4, per_member_limit=1)
    job = actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="金卡 VIP 回馈", tier="金卡",
                                  tag_ids=[vip.pk])
    assert _job(tenant_a, job).total == 5
    assert actions.run_grant_chunk(tenant_a, job.pk, size=2) is True
    assert _job(tenant_a, job).processed == 2
    actions.run_grant_job(tenant_a, job.pk, size=2)
    job = _job(tenant_a, job)
    assert (job.state, job.processed, job.granted, job.skipped_stock) == ("done", 5, 4, 1)
    assert _holders(tenant_a, template) == ["g-0", "g-1", "g-2", "g-3"]
    with tenant_context(tenant_a):
        # The member who missed out on stock keeps an unused limit.
        assert ClaimCounter.objects.filter(template=template, count=1).count() == 4
        assert not ClaimCounter.objects.filter(template=template, count__gt=0, member=gold[4]).exists()
    with tenant_context(tenant_b):
        assert not Coupon.objects.exists()


def test_a_retried_chunk_issues_nothing_twice(tenant_a, owner_a):
    make_members(tenant_a, [f"m-{i}" for i in range(5)])
    template = make_template(tenant_a, per_member_limit=3)
    job = actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="全员", tier=None)
    actions.run_grant_job(tenant_a, job.pk)
    with tenant_context(tenant_a):  # as if the worker died after the insert, before saving its cursor
        GrantJob.objects.filter(pk=job.pk).update(state="running", cursor=0, processed=0, granted=0)
    actions.run_grant_job(tenant_a, job.pk)
    assert len(_holders(tenant_a, template)) == 5
    with tenant_context(tenant_a):
        assert CouponTemplate.objects.get(pk=template.pk).issued == 5
        assert set(ClaimCounter.objects.filter(template=template).values_list("count", flat=True)) == {1}


def test_a_paused_template_stops_the_job(tenant_a, members_a, owner_a):
    template = make_template(tenant_a)
    job = actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="x", openids=["o-alice"])
    actions.set_template_state(tenant_a, template.pk, "paused")
    actions.run_grant_job(tenant_a, job.pk)
    job = _job(tenant_a, job)
    assert (job.state, job.error, job.granted) == ("failed", "not_active", 0)
    with pytest.raises(CouponError):
        actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="x", openids=["o-alice"])


def test_grant_jobs_need_a_reason_and_an_audience(tenant_a, members_a, owner_a):
    template = make_template(tenant_a)
    with pytest.raises(ValidationError):
        actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="", openids=["o-alice"])
    with pytest.raises(ValidationError):
        actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="x", openids=[])
    with tenant_context(tenant_a):
        assert not GrantJob.objects.exists()


def test_member_id_lists_skip_other_tenants_and_erased_members(tenant_a, tenant_b, owner_a):
    alice, bob, carol = make_members(tenant_a, ["o-alice", "o-bob", "o-carol"])
    (stranger,) = make_members(tenant_b, ["o-alice"])
    with tenant_context(tenant_a):
        Member.objects.filter(pk=carol.pk).update(erased_at=timezone.now())
    template = make_template(tenant_a, per_member_limit=1)
    job = actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="分群触达", channel="campaign",
                                  campaign_ref="cmp-7", member_ids=[bob.pk, stranger.pk, carol.pk, alice.pk])
    job = actions.run_grant_job(tenant_a, job.pk)
    assert (job.state, job.total, job.processed, job.granted, job.not_found) == ("done", 4, 4, 2, 2)
    assert _holders(tenant_a, template) == ["o-alice", "o-bob"]
    with tenant_context(tenant_a):
        assert set(Coupon.objects.values_list("channel", "campaign_ref")) == {("campaign", "cmp-7")}
    with tenant_context(tenant_b):
        assert not Coupon.objects.exists() and not ClaimCounter.objects.exists()


def test_without_a_per_member_limit_each_job_grants_again_and_counts_nothing(tenant_a, members_a, owner_a):
    template = make_template(tenant_a, per_member_limit=0)
    for reason in ("第一波", "第二波"):
        job = actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason=reason, tier=None)
        assert actions.run_grant_job(tenant_a, job.pk).granted == 3
    assert _holders(tenant_a, template) == ["o-alice", "o-alice", "o-bob", "o-bob", "o-carol", "o-carol"]
    with tenant_context(tenant_a):
        assert CouponTemplate.objects.get(pk=template.pk).issued == 6
        assert not ClaimCounter.objects.exists()
        assert len(set(Coupon.objects.values_list("code", flat=True))) == 6


@postgres_only
def test_stock_claimed_while_a_chunk_runs_is_given_back_by_the_chunk(tenant_a, owner_a):
    from campaigns.actions import grants

    members = make_members(tenant_a, [f"m-{i}" for i in range(6)])
    template = make_template(tenant_a, stock=5, per_member_limit=1)
    job = actions.start_grant_job(tenant_a, template.pk, actor=owner_a, reason="x",
                                  member_ids=[m.pk for m in members[:5]])
    # The chunk read the template when 5 were left; then 3 went to self-claims before it took its stock.
    with tenant_context(tenant_a):
        stale = CouponTemplate.objects.get(pk=template.pk)
        job = GrantJob.objects.get(pk=job.pk)
    for m in members[3:]:
        actions.claim_coupon(tenant_a, template.pk, m)
    with tenant_context(tenant_a):
        outcome = grants._chunk_in_sql(tenant_a, stale, job, 100, timezone.now())
        issued = CouponTemplate.objects.get(pk=template.pk).issued
        coupons = Coupon.objects.filter(template=template)
        holders = sorted(coupons.values_list("member__openid", flat=True))
        counts = dict(ClaimCounter.objects.values_list("member__openid", "count"))
    assert (outcome.granted, outcome.skipped_stock, outcome.processed) == (2, 1, 5)
    assert issued == 5 == len(holders)
    assert holders == ["m-0", "m-1", "m-3", "m-4", "m-5"]
    assert {o: n for o, n in counts.items() if n} == {"m-0": 1, "m-1": 1, "m-3": 1, "m-4": 1, "m-5": 1}
