from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.crypto import EncryptedTextField
from tenants.models import TenantOwnedModel


class Tag(TenantOwnedModel):
    """A merchant-defined label on members (VIP, 门店A, 企业客户…)."""

    name = models.CharField(_("名称"), max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("标签")
        verbose_name_plural = _("标签")
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_tag_tenant_name")]

    def __str__(self) -> str:
        return self.name


class Member(TenantOwnedModel):
    class Gender(models.IntegerChoices):
        UNKNOWN = 0, _("未知")
        MALE = 1, _("男")
        FEMALE = 2, _("女")

    openid = models.CharField(max_length=64)
    unionid = models.CharField(max_length=64, blank=True)
    nickname = models.CharField(_("昵称"), max_length=64, blank=True)
    avatar_url = models.URLField(_("头像"), max_length=500, blank=True)
    gender = models.SmallIntegerField(_("性别"), choices=Gender.choices, default=Gender.UNKNOWN)
    birthday = models.DateField(_("生日"), null=True, blank=True)
    city = models.CharField(_("城市"), max_length=64, blank=True)
    # The number itself only encrypted; the masked form for display and last-4 search, and a keyed
    # digest for exact lookup without decrypting every row.
    phone = EncryptedTextField(_("手机号"), blank=True)
    phone_masked = models.CharField(_("手机号"), max_length=16, blank=True)
    phone_digest = models.CharField(max_length=64, blank=True)
    tier = models.CharField(_("等级"), max_length=32, blank=True, default="")
    points = models.BigIntegerField(_("积分"), default=0)
    tags = models.ManyToManyField(Tag, through="MemberTag", related_name="members", blank=True)
    consent_marketing = models.BooleanField(_("接收营销消息"), default=False)
    consent_marketing_at = models.DateTimeField(null=True, blank=True)
    consent_profiling = models.BooleanField(_("允许个性化画像"), default=True)
    consent_profiling_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(_("首次访问"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("最近访问"), null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("会员")
        verbose_name_plural = _("会员")
        constraints = [models.UniqueConstraint(fields=["tenant", "openid"], name="uniq_member_tenant_openid")]
        indexes = [
            models.Index(fields=["tenant", "-last_seen_at", "id"], name="member_tenant_last_seen"),
            models.Index(fields=["tenant", "tier", "-last_seen_at"], name="member_tenant_tier"),
            models.Index(fields=["tenant", "phone_digest"], name="member_tenant_phone"),
            models.Index(fields=["tenant", "unionid"], name="member_tenant_unionid"),
        ]

    def __str__(self) -> str:
        return self.nickname or self.openid


class MemberTag(TenantOwnedModel):
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "member", "tag"], name="uniq_membertag")]
        indexes = [models.Index(fields=["tenant", "tag", "member"], name="membertag_tenant_tag")]


class ConsentEvent(TenantOwnedModel):
    """Consent is history, not a flag: each grant or withdrawal is a row."""

    class Kind(models.TextChoices):
        MARKETING = "marketing", _("营销消息")
        PROFILING = "profiling", _("个性化画像")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="consent_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    granted = models.BooleanField()
    source = models.CharField(max_length=32, default="miniprogram")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "member", "created_at"], name="consent_tenant_member")]


class Event(TenantOwnedModel):
    """Behaviour events: append-only, deduplicated by (tenant, event_id), read by member and time."""

    class Kind(models.TextChoices):
        VIEW = "view", _("浏览")
        CLICK = "click", _("点击")
        SHARE = "share", _("分享")
        ADD_TO_CART = "add_to_cart", _("加购")
        PURCHASE = "purchase", _("购买")
        COUPON_CLAIM = "coupon_claim", _("领券")
        COUPON_USE = "coupon_use", _("用券")
        PUSH_OPEN = "push_open", _("打开推送")

    event_id = models.CharField(max_length=64)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Items are deactivated, never deleted; no FK check on the hot insert path.
    item = models.ForeignKey("catalog.Item", null=True, blank=True, on_delete=models.DO_NOTHING,
                             related_name="+", db_index=False, db_constraint=False)
    amount_fen = models.BigIntegerField(null=True, blank=True)
    ts = models.DateTimeField()
    props = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "event_id"], name="uniq_event_tenant_event_id")]
        indexes = [models.Index(fields=["tenant", "member", "ts"], name="event_tenant_member_ts")]
