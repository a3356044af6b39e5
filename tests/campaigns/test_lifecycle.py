"""lock → consume / release keyed by an order reference; expiry, reminders and revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import actions, tasks
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import Coupon
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.campaigns.conftest import make_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def coupon_a(tenant_a, members_a):
    template = make_template(tenant_a, valid_days=10)
    return actions.claim_coupon(tenant_a, template.pk, members_a[0]).coupon


def _reload(tenant, coupon):
    with tenant_context(tenant):
        return Coupon.objects.get(pk=coupon.pk)


def test_lock_then_consume_each_twice_has_one_effect(tenant_a, coupon_a):
    first = actions.lock_coupon(tenant_a, coupon_a, "ORD-1", discount_fen=2000)
    locked_at = first.locked_at
    second = actions.lock_coupon(tenant_a, coupon_a.pk, "ORD-1", discount_fen=999)
    assert (second.state, second.order_ref, second.locked_at, second.discount_fen) == (
        "locked", "ORD-1", locked_at, 2000)
    used = actions.consume_coupon(tenant_a, coupon_a, "ORD-1")
    used_at = used.used_at
    again = actions.consume_coupon(tenant_a, coupon_a, "ORD-1")
    assert (again.state, again.used_at, again.discount_fen) == ("used", used_at, 2000)
    # Locking the used coupon again for the same order is harmless; for another order it is refused.
    assert actions.lock_coupon(tenant_a, coupon_a, "ORD-1").state == "used"
    with pytest.raises(CouponError) as exc:
        actions.lock_coupon(tenant_a, coupon_a, "ORD-2")
    assert exc.value.code == "coupon_used"
    assert actions.release_coupon(tenant_a, coupon_a, "ORD-1").state == "used"


def test_release_twice_gives_the_coupon_back_once(tenant_a, coupon_a):
    actions.lock_coupon(tenant_a, coupon_a, "ORD-1")
    released = actions.release_coupon(tenant_a, coupon_a, "ORD-1")
    assert (released.state, released.order_ref, released.locked_at) == ("unused", "", None)
    actions.lock_coupon(tenant_a, coupon_a, "ORD-2")
    # A late second release for ORD-1 must not free the coupon ORD-2 now holds.
    assert actions.release_coupon(tenant_a, coupon_a, "ORD-1").order_ref == "ORD-2"
    assert _reload(tenant_a, coupon_a).state == "locked"


def test_a_coupon_locked_by_one_order_cannot_be_locked_or_consumed_by_another(tenant_a, coupon_a):
    actions.lock_coupon(tenant_a, coupon_a, "ORD-1")
    with pytest.raises(CouponError) as exc:
        actions.lock_coupon(tenant_a, coupon_a, "ORD-2")
    assert exc.value.code == "coupon_locked"
    with pytest.raises(CouponError) as exc:
        actions.consume_coupon(tenant_a, coupon_a, "ORD-2")
    assert exc.value.code == "not_locked"
    assert _reload(tenant_a, coupon_a).order_ref == "ORD-1"


def test_consume_needs_a_lock(tenant_a, coupon_a):
    with pytest.raises(CouponError) as exc:
        actions.consume_coupon(tenant_a, coupon_a, "ORD-1")
    assert exc.value.code == "not_locked"
    assert _reload(tenant_a, coupon_a).state == "unused"


def test_an_expired_coupon_cannot_be_locked(tenant_a, coupon_a):
    later = coupon_a.valid_until + timedelta(seconds=1)
    with pytest.raises(CouponError) as exc:
        actions.lock_coupon(tenant_a, coupon_a, "ORD-1", now=later)
    assert exc.value.code == "coupon_expired"
    assert actions.expire_coupons(tenant_a, now=later) == 1
    with pytest.raises(CouponError) as exc:
        actions.lock_coupon(tenant_a, coupon_a, "ORD-1", now=later)
    assert exc.value.code == "coupon_expired"
    assert _reload(tenant_a, coupon_a).state == "expired"


def test_a_coupon_not_yet_valid_cannot_be_locked(tenant_a, members_a):
    template = make_template(tenant_a, valid_days=5, start_delay_days=2)
    coupon = actions.claim_coupon(tenant_a, template.pk, members_a[0]).coupon
    with pytest.raises(CouponError) as exc:
        actions.lock_coupon(tenant_a, coupon, "ORD-1")
    assert exc.value.code == "not_yet_valid"


def test_a_locked_coupon_survives_expiry_and_can_be_consumed(tenant_a, coupon_a):
    actions.lock_coupon(tenant_a, coupon_a, "ORD-1")
    later = coupon_a.valid_until + timedelta(minutes=5)
    assert actions.expire_coupons(tenant_a, now=later) == 0
    assert actions.consume_coupon(tenant_a, coupon_a, "ORD-1", now=later).state == "used"


def test_release_after_expiry_expires_the_coupon(tenant_a, coupon_a):
    actions.lock_coupon(tenant_a, coupon_a, "ORD-1")
    later = coupon_a.valid_until + timedelta(minutes=5)
    assert actions.release_coupon(tenant_a, coupon_a, "ORD-1", now=later).state == "expired"


def test_another_tenants_coupon_cannot_be_locked_consumed_released_or_revoked(
        tenant_a, tenant_b, coupon_a, owner_b):
    for call in (lambda: actions.lock_coupon(tenant_b, coupon_a.pk, "ORD-1"),
                 lambda: actions.consume_coupon(tenant_b, coupon_a.pk, "ORD-1"),
                 lambda: actions.release_coupon(tenant_b, coupon_a.pk, "ORD-1"),
                 lambda: actions.revoke_coupon(tenant_b, coupon_a.pk, actor=owner_b, reason="x")):
        with pytest.raises(NotFound):
            call()
    assert _reload(tenant_a, coupon_a).state == "unused"


def test_expire_task_touches_only_its_tenant(tenant_a, tenant_b, members_a, members_b):
    past = timezone.now() - timedelta(days=40)
    template_a = make_template(tenant_a, valid_days=30)
    template_b = make_template(tenant_b, valid_days=30)
    old_a = actions.claim_coupon(tenant_a, template_a.pk, members_a[0], now=past).coupon
    fresh_a = actions.claim_coupon(tenant_a, template_a.pk, members_a[1]).coupon
    old_b = actions.claim_coupon(tenant_b, template_b.pk, members_b[0], now=past).coupon
    assert tasks.expire_coupons.delay(tenant_a.pk).get() == 1
    assert _reload(tenant_a, old_a).state == "expired"
    assert _reload(tenant_a, fresh_a).state == "unused"
    assert _reload(tenant_b, old_b).state == "unused"
    assert tasks.expire_coupons_everywhere.delay().get() == 2
    assert _reload(tenant_b, old_b).state == "expired"


def test_reminder_hook_fires_once_per_coupon_expiring_soon(tenant_a, members_a):
    template = make_template(tenant_a, valid_days=30)
    soon = actions.claim_coupon(tenant_a, template.pk, members_a[0],
                                now=timezone.now() - timedelta(days=28)).coupon
    actions.claim_coupon(tenant_a, template.pk, members_a[1])
    seen = []

    def receiver(sender, tenant, coupons, **kwargs):
        seen.append((tenant.pk, [c.code for c in coupons]))

    tasks.coupons_expiring.connect(receiver)
    try:
        assert tasks.remind_expiring_coupons.delay(tenant_a.pk).get() == 1
        assert tasks.remind_expiring_coupons.delay(tenant_a.pk).get() == 0
    finally:
        tasks.coupons_expiring.disconnect(receiver)
    assert seen == [(tenant_a.pk, [soon.code])]


def test_revoke_takes_back_an_unused_coupon_with_an_audit_row(tenant_a, coupon_a, owner_a):
    revoked = actions.revoke_coupon(tenant_a, coupon_a.pk, actor=owner_a, reason="误发")
    assert revoked.state == "revoked"
    with pytest.raises(CouponError):
        actions.lock_coupon(tenant_a, coupon_a, "ORD-1")
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(action="coupon.revoked")
    assert (event.actor, event.details["coupon"], event.details["reason"]) == (owner_a, coupon_a.code, "误发")


def test_a_locked_coupon_cannot_be_revoked(tenant_a, coupon_a, owner_a):
    actions.lock_coupon(tenant_a, coupon_a, "ORD-1")
    with pytest.raises(CouponError) as exc:
        actions.revoke_coupon(tenant_a, coupon_a.pk, actor=owner_a, reason="误发")
    assert exc.value.code == "coupon_locked"
    assert _reload(tenant_a, coupon_a).state == "locked"
