"""Coupons (templates and the coupons members hold), points ledger, tiers and bulk grants."""

from __future__ import annotations

import base64
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tenants.models import TenantOwnedModel

# 32 symbols without the look-alikes 0/O and 1/I: codes get read aloud at the till.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 16  # 80 random bits: unguessable, and unique per tenant by constraint
_FROM_BASE32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CODE_ALPHABET)


def new_coupon_code() -> str:
    # Bulk grants make 100,000 codes at a time: base32 of 10 random bytes, relabelled.
    return base64.b32encode(secrets.token_bytes(10)).decode().translate(_FROM_BASE32)


class Channel(models.TextChoices):
    SELF_CLAIM = "self_claim", _("小程序领取")
    CAMPAIGN = "campaign", _("营销活动发放")
    STAFF = "staff", _("员工发放")
    POINTS = "points", _("积分兑换")
    NEW_MEMBER = "new_member", _("新会员礼")
    TIER = "tier", _("等级权益")


class CouponTemplate(TenantOwnedModel):
    class Kind(models.TextChoices):
        CASH_OFF = "cash_off", _("满减")
        PERCENT_OFF = "percent_off", _("折扣")
        INSTANT_OFF = "instant_off", _("立减")
        EXCHANGE = "exchange", _("兑换")

    class State(models.TextChoices):
        DRAFT = "draft", _("草稿")
        ACTIVE = "active", _("进行中")
        PAUSED = "paused", _("已暂停")
        ENDED = "ended", _("已结束")

    name = models.CharField(_("名称"), max_length=64)
    description = models.CharField(_("说明"), max_length=500, blank=True)
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    # Fen for cash_off / instant_off; percent off (1–99) for percent_off; unused for exchange.
    value = models.PositiveIntegerField(_("面值"), default=0)
    threshold_fen = models.PositiveBigIntegerField(_("使用门槛（分）"), default=0)
    cap_fen = models.PositiveBigIntegerField(_("最高优惠（分）"), null=True, blank=True)
    exchange_item = models.ForeignKey("catalog.Item", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", verbose_name=_("兑换商品"))
    # Scope as id lists: the pricing function reads them as sets, and they travel to tasks as-is.
    item_ids = models.JSONField(_("适用商品"), default=list, blank=True)
    category_ids = models.JSONField(_("适用分类"), default=list, blank=True)
    excluded_item_ids = models.JSONField(_("排除商品"), default=list, blank=True)
    excluded_category_ids = models.JSONField(_("排除分类"), default=list, blank=True)
    stackable = models.BooleanField(_("可与其他券叠加"), default=False)
    channels = models.JSONField(_("发放渠道"), default=list, blank=True)
    points_cost = models.PositiveIntegerField(_("兑换所需积分"), default=0)

    stock = models.PositiveIntegerField(_("总库存"), null=True, blank=True, help_text=_("留空表示不限"))
    issued = models.PositiveIntegerField(_("已发放"), default=0)
    per_member_limit = models.PositiveIntegerField(_("每人限领"), default=1, help_text=_("0 表示不限"))

    # Validity: a fixed window, or N days from claim after a start delay.
    valid_from = models.DateTimeField(_("生效时间"), null=True, blank=True)
    valid_until = models.DateTimeField(_("失效时间"), null=True, blank=True)
    valid_days = models.PositiveIntegerField(_("领取后有效天数"), null=True, blank=True)
    start_delay_days = models.PositiveIntegerField(_("领取后几天生效"), default=0)

    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("优惠券模板")
        verbose_name_plural = _("优惠券模板")
        indexes = [models.Index(fields=["tenant", "state", "-created_at"], name="coupontpl_tenant_state")]
        constraints = [
            models.CheckConstraint(condition=Q(stock__isnull=True) | Q(issued__lte=models.F("stock")),
                                   name="coupontpl_issued_within_stock"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def remaining(self) -> int | None:
        return None if self.stock is None else max(self.stock - self.issued, 0)


class Coupon(TenantOwnedModel):
    class State(models.TextChoices):
        UNUSED = "unused", _("未使用")
        LOCKED = "locked", _("已锁定")
        USED = "used", _("已使用")
        EXPIRED = "expired", _("已过期")
        REVOKED = "revoked", _("已撤销")

    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="coupons",
                                 db_index=False)
    member = models.ForeignKey("profiles.Member", on_delete=models.CASCADE, related_name="coupons",
                               db_index=False)
    code = models.CharField(_("券码"), max_length=32, default=new_coupon_code)
    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.UNUSED)
    claimed_at = models.DateTimeField(_("领取时间"))
    valid_from = models.DateTimeField(_("生效时间"))
    valid_until = models.DateTimeField(_("失效时间"), null=True, blank=True)
    order_ref = models.CharField(_("订单"), max_length=64, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    discount_fen = models.PositiveBigIntegerField(_("优惠金额（分）"), null=True, blank=True)
    channel = models.CharField(_("渠道"), max_length=16, choices=Channel.choices)
    campaign_ref = models.CharField(_("营销活动"), max_length=64, blank=True)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    idempotency_key = models.CharField(max_length=100, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("优惠券")
        verbose_name_plural = _("优惠券")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="uniq_coupon_tenant_code"),
            models.UniqueConstraint(fields=["tenant", "member", "idempotency_key"],
                                    condition=~Q(idempotency_key=""), name="uniq_coupon_idempotency"),
        ]
        indexes = [
            models.Index(fields=["tenant", "member", "state"], name="coupon_tenant_member"),
            models.Index(fields=["tenant", "template", "state"], name="coupon_tenant_template"),
            models.Index(fields=["tenant", "state", "valid_until"], name="coupon_tenant_expiry"),
            models.Index(fields=["tenant", "order_ref"], name="coupon_tenant_order",
                         condition=~Q(order_ref="")),
        ]

    def __str__(self) -> str:
        return self.code


class ClaimCounter(TenantOwnedModel):
    """How many coupons of a template a member has received: the per-member limit's one row to lock."""

    # No database constraints on these two: a counter is only ever written by the statement that
    # issues the coupon (whose own foreign keys check the same template and member), and each
    # constraint would add a row-locking look-up per counter at commit: a fifth of a bulk grant.
    # Deleting a template or member still cascades here (Django collects the rows).
    template = models.ForeignKey(CouponTemplate, on_delete=models.CASCADE, related_name="+", db_index=False,
                                 db_constraint=False)
    member = models.ForeignKey("profiles.Member", on_delete=models.CASCADE, related_name="+", db_index=False,
                               db_constraint=False)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "template", "member"], name="uniq_claimcounter")]


class GrantJob(TenantOwnedModel):
    """A bulk grant (pasted openids, tier/tag filter, campaign audience) run in chunks with progress."""

    class State(models.TextChoices):
        PENDING = "pending", _("排队中")
        RUNNING = "running", _("发放中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")

    template = models.ForeignKey(CouponTemplate, on_delete=models.PROTECT, related_name="grant_jobs",
                                 db_index=False)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.STAFF)
    campaign_ref = models.CharField(max_length=64, blank=True)
    # Who is targeted: {"openids": [...]} | {"member_ids": [...]} | {"tier": str, "tag_ids": [...]}.
    audience = models.JSONField(default=dict)
    # Each member gets at most one coupon per job (a retry of a chunk is a no-op).
    idempotency_key = models.CharField(max_length=100)
    reason = models.CharField(_("原因"), max_length=200)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    granted = models.PositiveIntegerField(default=0)
    skipped_limit = models.PositiveIntegerField(default=0)
    skipped_stock = models.PositiveIntegerField(default=0)
    not_found = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    # Where the next chunk starts: a member id (filters) or an index into the openid/id list.
    cursor = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "template", "-created_at"], name="grantjob_tenant_template")]

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, self.processed * 100 // self.total)


class LoyaltySettings(TenantOwnedModel):
    """The tenant's points rules, tier basis, new-member coupon and refund policy (one row per tenant)."""

    class Basis(models.TextChoices):
        POINTS = "points", _("累计积分")
        SPEND = "spend", _("累计消费")

    class CouponReturn(models.TextChoices):
        NEVER = "never", _("不退还")
        FULL_REFUND = "full_refund", _("全额退款时退还")

    points_per_yuan = models.PositiveIntegerField(_("每消费 1 元得积分"), default=1)
    # Points earned on a day last through the same day N calendar months later; 0: they never expire.
    points_expire_months = models.PositiveSmallIntegerField(_("积分有效期（月）"), default=0,
                                                            help_text=_("0 表示永不过期"))
    # Whether the coupon an order used goes back to the member once the order is fully refunded
    # (only while the coupon is still within its validity).
    return_coupon_on_refund = models.CharField(_("退款后退还优惠券"), max_length=16, choices=CouponReturn.choices,
                                               default=CouponReturn.FULL_REFUND)
    tier_basis = models.CharField(_("等级依据"), max_length=8, choices=Basis.choices, default=Basis.POINTS)
    new_member_template = models.ForeignKey(CouponTemplate, null=True, blank=True, on_delete=models.SET_NULL,
                                            related_name="+", verbose_name=_("新会员券"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_loyaltysettings_tenant")]


class Tier(TenantOwnedModel):
    name = models.CharField(_("名称"), max_length=32)
    # Lifetime points earned, or lifetime spend in fen, depending on LoyaltySettings.tier_basis.
    threshold = models.PositiveBigIntegerField(_("门槛"))
    earn_multiplier_pct = models.PositiveIntegerField(_("积分倍率（%）"), default=100)
    monthly_template = models.ForeignKey(CouponTemplate, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+", verbose_name=_("每月赠券"))
    benefits = models.CharField(_("权益说明"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("会员等级")
        verbose_name_plural = _("会员等级")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="uniq_tier_tenant_name"),
            models.UniqueConstraint(fields=["tenant", "threshold"], name="uniq_tier_tenant_threshold"),
        ]

    def __str__(self) -> str:
        return self.name


class PointsEntry(TenantOwnedModel):
    """The points ledger: the truth. Member.points caches the last ``balance_after``."""

    class Reason(models.TextChoices):
        EARN = "earn", _("消费得积分")
        EXCHANGE = "exchange", _("兑换优惠券")
        REFUND = "refund", _("退款扣回")
        ADJUST = "adjust", _("人工调整")
        EXPIRE = "expire", _("积分过期")

    member = models.ForeignKey("profiles.Member", on_delete=models.CASCADE, related_name="+", db_index=False)
    delta = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    # What caused it (an order ref, a coupon code): with reason, makes earning for one order idempotent.
    ref = models.CharField(max_length=64, blank=True)
    amount_fen = models.BigIntegerField(default=0)  # the money behind an earn or refund, for spend tiers
    # What counts toward points tiers: an earn's points; minus all a refund voids, even when the
    # balance (already spent) could only give back part of it.
    tier_points = models.BigIntegerField(default=0)
    note = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "member", "reason", "ref"], condition=~Q(ref=""),
                                    name="uniq_points_entry_ref"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="points_balance_not_negative"),
        ]
        indexes = [models.Index(fields=["tenant", "member", "id"], name="points_tenant_member")]
