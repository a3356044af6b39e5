"""Orders, their lines and state history, WeChat Pay notifications as received, and refunds."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tenants.models import TenantOwnedModel


class Order(TenantOwnedModel):
    class State(models.TextChoices):
        CREATED = "created", _("待支付")
        PAYING = "paying", _("支付中")
        PAID = "paid", _("已支付")
        PARTIALLY_REFUNDED = "partially_refunded", _("部分退款")
        REFUNDED = "refunded", _("已退款")
        CLOSED = "closed", _("已关闭")

    out_trade_no = models.CharField(_("商户订单号"), max_length=32)
    client_order_id = models.CharField(max_length=64)
    member = models.ForeignKey("profiles.Member", on_delete=models.PROTECT, related_name="+", db_index=False,
                               verbose_name=_("会员"))
    state = models.CharField(_("状态"), max_length=20, choices=State.choices, default=State.CREATED)
    description = models.CharField(_("商品描述"), max_length=127)
    subtotal_fen = models.PositiveBigIntegerField(_("商品金额（分）"))
    discount_fen = models.PositiveBigIntegerField(_("优惠（分）"), default=0)
    payable_fen = models.PositiveBigIntegerField(_("应付（分）"))
    refunded_fen = models.PositiveBigIntegerField(_("已退款（分）"), default=0)
    coupon = models.ForeignKey("campaigns.Coupon", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+", db_index=False, verbose_name=_("优惠券"))
    # The API v2 sign type the order was placed with; a v2 notify is checked with it, then MD5.
    v2_sign_type = models.CharField(max_length=16, blank=True, default="")
    prepay_id = models.CharField(max_length=64, blank=True)
    prepay_expires_at = models.DateTimeField(null=True, blank=True)
    transaction_id = models.CharField(_("微信支付单号"), max_length=32, blank=True)
    expires_at = models.DateTimeField(_("支付截止"))
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    # When the payment's effects (coupon used, points, purchase event, order_paid) were applied:
    # the order row is the outbox, so a paid order with no fulfilled_at still owes them.
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(_("关闭时间"), null=True, blank=True)
    # Set when WeChat said something about this order we did not apply (see PaymentNotification).
    needs_attention = models.BooleanField(_("待人工处理"), default=False)
    created_at = models.DateTimeField(_("下单时间"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("订单")
        verbose_name_plural = _("订单")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "out_trade_no"], name="uniq_order_tenant_out_trade_no"),
            models.UniqueConstraint(fields=["tenant", "member", "client_order_id"],
                                    name="uniq_order_tenant_member_client_id"),
            # One WeChat payment pays one order, whichever path (notify, query) reports it first.
            models.UniqueConstraint(fields=["tenant", "transaction_id"], condition=~Q(transaction_id=""),
                                    name="uniq_order_tenant_transaction"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="order_tenant_created"),
            models.Index(fields=["tenant", "state", "created_at"], name="order_tenant_state"),
            models.Index(fields=["tenant", "member", "-created_at"], name="order_tenant_member"),
        ]

    def __str__(self) -> str:
        return self.out_trade_no

    @property
    def refundable_fen(self) -> int:
        return self.payable_fen - self.refunded_fen


class OrderLine(TenantOwnedModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False)
    item = models.ForeignKey("catalog.Item", on_delete=models.PROTECT, related_name="+", db_index=False)
    # What was sold at what price, as it was when ordered: the catalogue may change afterwards.
    sku = models.CharField(_("SKU"), max_length=64)
    name = models.CharField(_("名称"), max_length=200)
    category_id = models.BigIntegerField(null=True, blank=True)
    unit_price_fen = models.PositiveBigIntegerField(_("单价（分）"))
    qty = models.PositiveIntegerField(_("数量"))
    amount_fen = models.PositiveBigIntegerField(_("金额（分）"))
    discount_fen = models.PositiveBigIntegerField(_("优惠（分）"), default=0)

    class Meta:
        indexes = [models.Index(fields=["tenant", "order"], name="orderline_tenant_order")]


class OrderTransition(TenantOwnedModel):
    """Every state change of an order, with what caused it."""

    class Cause(models.TextChoices):
        API = "api", _("小程序")
        NOTIFY_V3 = "notify_v3", _("支付通知 v3")
        NOTIFY_V2 = "notify_v2", _("支付通知 v2")
        QUERY = "query", _("主动查询")
        EXPIRY = "expiry", _("超时关闭")
        CONSOLE = "console", _("控制台")
        REFUND = "refund", _("退款")
        SEED = "seed", _("演示数据")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="transitions", db_index=False)
    from_state = models.CharField(max_length=20)
    to_state = models.CharField(max_length=20)
    cause = models.CharField(_("原因"), max_length=16, choices=Cause.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "order", "created_at"], name="transition_tenant_order"),
            models.Index(fields=["tenant", "to_state", "created_at"], name="transition_tenant_to"),
        ]


class PaymentNotification(TenantOwnedModel):
    """A WeChat Pay notification exactly as it arrived (after verification), and what we made of it."""

    class Channel(models.TextChoices):
        V3 = "v3", "API v3"
        V2 = "v2", "API v2"

    class Outcome(models.TextChoices):
        RECEIVED = "received", _("已接收")
        APPLIED = "applied", _("已处理")
        NO_CHANGE = "no_change", _("无需处理")
        FLAGGED = "flagged", _("待人工处理")

    channel = models.CharField(max_length=4, choices=Channel.choices)
    # v3: the notification id (the same on every retry); v2 has none, so a key built from its content.
    notify_id = models.CharField(max_length=128)
    event_type = models.CharField(_("事件"), max_length=32)
    out_trade_no = models.CharField(_("商户订单号"), max_length=32, blank=True)
    transaction_id = models.CharField(_("微信支付单号"), max_length=32, blank=True)
    out_refund_no = models.CharField(_("退款单号"), max_length=64, blank=True)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="notifications", db_index=False)
    raw_body = models.TextField()
    resource = models.JSONField(_("解密内容"), default=dict, blank=True)
    outcome = models.CharField(_("结果"), max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED)
    flag_reason = models.CharField(_("问题"), max_length=32, blank=True)
    flag_details = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(_("收到次数"), default=1)
    received_at = models.DateTimeField(_("首次收到"), auto_now_add=True)
    last_received_at = models.DateTimeField(_("最近收到"), auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        verbose_name = _("支付通知")
        verbose_name_plural = _("支付通知")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel", "notify_id"], name="uniq_notification_tenant_id"),
        ]
        indexes = [
            models.Index(fields=["tenant", "order", "received_at"], name="notification_tenant_order"),
            models.Index(fields=["tenant", "outcome", "-received_at"], name="notification_tenant_outcome"),
        ]


class Refund(TenantOwnedModel):
    class State(models.TextChoices):
        REQUESTED = "requested", _("已申请")
        PROCESSING = "processing", _("退款中")
        SUCCESS = "success", _("退款成功")
        ABNORMAL = "abnormal", _("退款异常")
        CLOSED = "closed", _("退款关闭")
        FAILED = "failed", _("申请失败")

    # What still counts against the paid amount: everything but a refund that ended without money moving.
    RESERVING = (State.REQUESTED, State.PROCESSING, State.SUCCESS, State.ABNORMAL)

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds", db_index=False)
    out_refund_no = models.CharField(_("退款单号"), max_length=64)
    refund_id = models.CharField(_("微信退款单号"), max_length=64, blank=True)
    amount_fen = models.PositiveBigIntegerField(_("退款金额（分）"))
    reason = models.CharField(_("退款原因"), max_length=80, blank=True)
    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.REQUESTED)
    error = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(_("申请时间"), auto_now_add=True)
    succeeded_at = models.DateTimeField(_("到账时间"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("退款")
        verbose_name_plural = _("退款")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "out_refund_no"], name="uniq_refund_tenant_out_no"),
        ]
        indexes = [models.Index(fields=["tenant", "order", "created_at"], name="refund_tenant_order")]


class BillCheck(TenantOwnedModel):
    """A day's WeChat trade bill compared with our orders: the differences, for the console."""

    bill_date = models.DateField(_("账单日期"))
    checked_at = models.DateTimeField(auto_now=True)
    wechat_count = models.PositiveIntegerField(default=0)
    ours_count = models.PositiveIntegerField(default=0)
    differences = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("对账")
        verbose_name_plural = _("对账")
        constraints = [models.UniqueConstraint(fields=["tenant", "bill_date"], name="uniq_billcheck_tenant_date")]
