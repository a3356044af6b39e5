"""Giving a used coupon back to its member when the order that used it is fully refunded.

The refund's completion calls this in the transaction that moves the order to refunded, under the
order's and the refund's row locks, so a repeated or concurrent refund notify never reaches it
twice. It is idempotent on its own as well: only a coupon still used by this very order can change,
returning it clears that link, and a coupon kept as used is left exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.utils import timezone

from campaigns import queries
from campaigns.models import Coupon, LoyaltySettings
from campaigns.scope import within
from tenants.actions import audit
from tenants.models import Tenant


class ReturnOutcome(StrEnum):
    RETURNED = "returned"  # back to unused
    EXPIRED = "expired"  # past its validity: stays used
    POLICY = "policy"  # the tenant does not give coupons back: stays used
    NOT_USED = "not_used"  # not (or no longer) used by this order: nothing to give back


@dataclass(frozen=True)
class CouponReturn:
    outcome: str
    coupon_id: int
    code: str
    state: str  # the coupon's state afterwards
    valid_until: datetime | None

    def as_details(self) -> dict[str, object]:
        """What the order's refund transition keeps, for the console's order page."""
        return {"outcome": self.outcome, "coupon": self.code, "state": self.state,
                "valid_until": self.valid_until.isoformat() if self.valid_until else None}


def return_coupon_for_refund(tenant: Tenant, coupon_id: int, order_ref: str, *,
                             now: datetime | None = None) -> CouponReturn:
    """The order ``order_ref`` was fully refunded: its used coupon goes back to ``unused`` when the
    tenant's policy says so and the coupon is still valid; otherwise it stays used, and why is returned.

    Raises NotFound for a coupon that is missing or another tenant's.
    """
    if not order_ref:
        raise ValueError("order_ref is required")
    now = now or timezone.now()
    with within(tenant):
        coupon = queries.get_coupon(coupon_id, for_update=True)
        if coupon.state != Coupon.State.USED or coupon.order_ref != order_ref:
            return _result(ReturnOutcome.NOT_USED, coupon)
        if queries.loyalty_settings().return_coupon_on_refund != LoyaltySettings.CouponReturn.FULL_REFUND:
            return _result(ReturnOutcome.POLICY, coupon)
        if coupon.valid_until is not None and coupon.valid_until <= now:
            return _result(ReturnOutcome.EXPIRED, coupon)
        discount_fen = coupon.discount_fen
        # Back to how it was before the order locked it: usable by a new order, counted as unused
        # in the funnel, and its discount no longer part of the template's cost.
        coupon.state = Coupon.State.UNUSED
        coupon.order_ref = ""
        coupon.locked_at = None
        coupon.used_at = None
        coupon.discount_fen = None
        coupon.save(update_fields=["state", "order_ref", "locked_at", "used_at", "discount_fen"])
        # The member's history (their points page lists what happened to them): why it came back.
        audit(tenant, "coupon.returned_on_refund", target=f"member:{coupon.member_id}", coupon=coupon.code,
              template=coupon.template_id, order=order_ref, discount_fen=discount_fen,
              valid_until=coupon.valid_until.isoformat() if coupon.valid_until else None)
        return _result(ReturnOutcome.RETURNED, coupon)


def _result(outcome: str, coupon: Coupon) -> CouponReturn:
    return CouponReturn(outcome=str(outcome), coupon_id=coupon.pk, code=coupon.code, state=coupon.state,
                        valid_until=coupon.valid_until)
