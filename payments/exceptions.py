"""Why an order, payment or refund operation was refused: a stable code the API and console show."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _


class PaymentsError(Exception):
    messages = {
        "invalid_lines": _("订单商品不正确。"),
        "unknown_sku": _("商品不存在或已下架。"),
        "idempotency_conflict": _("这个 client_order_id 已用于另一笔内容不同的订单。"),
        "coupon_not_applicable": _("这张优惠券不适用于本订单。"),
        "order_paid": _("订单已支付。"),
        "order_closed": _("订单已关闭。"),
        "order_expired": _("订单已超时，请重新下单。"),
        "not_refundable": _("订单当前不能退款。"),
        "refund_exceeds_paid": _("退款金额超过可退金额。"),
        "invalid_amount": _("金额不正确。"),
        "pay_not_configured": _("商户尚未配置微信支付。"),
        "wechat_pay_refused": _("微信支付拒绝了这个请求。"),
        "wechat_unavailable": _("暂时无法连接微信支付，请稍后再试。"),
    }
    statuses = {
        "invalid_lines": 400,
        "unknown_sku": 400,
        "invalid_amount": 400,
        "coupon_not_applicable": 409,
        "wechat_unavailable": 503,
    }

    def __init__(self, code: str, message: str | None = None, **details):
        self.code = code
        self.message = str(message or self.messages.get(code, code))
        self.status = self.statuses.get(code, 409)
        self.details = details
        super().__init__(f"{code}: {self.message}")


class OrderNotFound(Exception):
    """Missing and another tenant's (or another member's) alike."""

    status = 404
    code = "not_found"
