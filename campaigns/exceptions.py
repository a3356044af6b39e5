"""Why a coupon or points operation was refused: a stable code the API and console show."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _


class CouponError(Exception):
    status = 409
    messages = {
        "sold_out": _("优惠券已领完。"),
        "limit_reached": _("已达到每人限领数量。"),
        "not_active": _("该优惠券当前不可领取。"),
        "channel_not_allowed": _("该优惠券不能通过此渠道发放。"),
        "idempotency_conflict": _("这个 Idempotency-Key 已用于另一张优惠券。"),
        "coupon_locked": _("优惠券已被另一笔订单锁定。"),
        "coupon_used": _("优惠券已使用。"),
        "coupon_expired": _("优惠券已过期。"),
        "coupon_revoked": _("优惠券已撤销。"),
        "not_yet_valid": _("优惠券尚未生效。"),
        "not_locked": _("优惠券没有被这笔订单锁定。"),
        "insufficient_points": _("积分不足。"),
        "not_exchangeable": _("该优惠券不能用积分兑换。"),
        "bad_transition": _("当前状态不能进行这个操作。"),
    }

    def __init__(self, code: str, message: str | None = None, **details):
        self.code = code
        self.message = str(message or self.messages.get(code, code))
        self.details = details
        super().__init__(f"{code}: {self.message}")


class NotFound(Exception):
    """Missing and another tenant's alike."""

    status = 404
    code = "not_found"
