"""create_coupon_template as CONTRACT.md gives it."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.models import CouponTemplate
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db


def test_creates_an_active_template_and_prints_its_id(tenant_a, tenant_b):
    out = StringIO()
    call_command("create_coupon_template", "shop-a", "--name", "满100减20", "--kind", "cash_off", "--value", "2000",
                 "--threshold", "10000", "--stock", "500", "--per-member", "2", "--valid-days", "14", "--activate",
                 stdout=out)
    template_id = int(out.getvalue().strip())
    with tenant_context(tenant_a):
        t = CouponTemplate.objects.get(pk=template_id)
    assert (t.name, t.kind, t.value, t.threshold_fen, t.stock, t.per_member_limit, t.valid_days, t.state) == (
        "满100减20", "cash_off", 2000, 10000, 500, 2, 14, "active")
    with tenant_context(tenant_b):
        assert not CouponTemplate.objects.exists()


def test_invalid_rules_are_explained_and_nothing_is_created(tenant_a):
    with pytest.raises(CommandError, match="门槛"):
        call_command("create_coupon_template", "shop-a", "--name", "x", "--kind", "cash_off", "--value", "500",
                     stdout=StringIO())
    with pytest.raises(CommandError, match="no tenant"):
        call_command("create_coupon_template", "nope", "--name", "x", "--kind", "instant_off", "--value", "5",
                     stdout=StringIO())
    with tenant_context(tenant_a):
        assert not CouponTemplate.objects.exists()


def test_percent_off_with_cap_defaults_to_draft(tenant_a):
    out = StringIO()
    call_command("create_coupon_template", "shop-a", "--name", "八折", "--kind", "percent_off", "--value", "20",
                 "--cap", "3000", stdout=out)
    with tenant_context(tenant_a):
        t = CouponTemplate.objects.get(pk=int(out.getvalue()))
    assert (t.value, t.cap_fen, t.state, t.stock) == (20, 3000, "draft", None)
