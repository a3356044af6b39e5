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
    # right(phone_masked, 4), kept by a database trigger (migration 0004) whatever writes the row.
    # Last-4 search compares this column: under row-level security PostgreSQL will not use an index
    # on right(phone_masked, 4), because right() is not leakproof.
    phone_last4 = models.CharField(max_length=4, blank=True, default="", editable=False)
    # upper(nickname), kept by a database trigger (migration 0005) whatever writes the row. Nickname
    # search compares this column, a prefix as a byte-wise range: under row-level security PostgreSQL
    # will not use an index for upper() or LIKE, which are not leakproof.
    nickname_key = models.TextField(blank=True, default="", editable=False)
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
            # Built concurrently by migrations 0003, 0004 and 0005.
            models.Index(fields=["tenant", "-points", "id"], name="member_tenant_points"),
            models.Index(fields=["tenant", "-first_seen_at", "id"], name="member_tenant_first_seen"),
            models.Index(fields=["tenant", "phone_last4"], name="member_tenant_phone_last4"),
            # text_pattern_ops: ordered byte by byte whatever the database's collation, so that the
            # prefix range on nickname_key is exactly the prefix (ignored on SQLite, whose text is).
            models.Index(fields=["tenant", "nickname_key"], opclasses=["int8_ops", "text_pattern_ops"],
                         name="member_tenant_nick_key"),
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


# --- computed profiles (profiles.computation) ------------------------------------------------------


class MemberProfile(TenantOwnedModel):
    """What the nightly computation derived for one member; rewritten whole by each run.

    A member who refused profiling keeps only the plain purchase facts (recency, frequency,
    monetary: the same facts their order history shows) with ``profiled`` false; every derived
    field (scores, segment, cluster, interests, propensity, predicted spend) stays empty for them.
    """

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", db_index=False)
    profiled = models.BooleanField(_("已生成画像"), default=False)
    recency_days = models.IntegerField(_("距最近购买天数"), null=True, blank=True)
    frequency = models.IntegerField(_("购买次数"), default=0)
    monetary_fen = models.BigIntegerField(_("累计消费（分）"), default=0)
    last_purchase_at = models.DateTimeField(_("最近购买"), null=True, blank=True)
    last_active_at = models.DateTimeField(_("最近行为"), null=True, blank=True)
    events_30d = models.IntegerField(_("近 30 天行为数"), default=0)
    r_score = models.SmallIntegerField(_("R 分"), null=True, blank=True)
    f_score = models.SmallIntegerField(_("F 分"), null=True, blank=True)
    m_score = models.SmallIntegerField(_("M 分"), null=True, blank=True)
    rfm_segment = models.CharField(_("RFM 分层"), max_length=24, blank=True)
    cluster = models.SmallIntegerField(_("聚类"), null=True, blank=True)
    cluster_label = models.CharField(_("聚类名称"), max_length=32, blank=True)
    interest_tags = models.JSONField(_("兴趣标签"), default=list, blank=True)
    propensity = models.FloatField(_("30 天购买概率"), null=True, blank=True)
    predicted_spend_fen = models.BigIntegerField(_("预测 90 天消费（分）"), null=True, blank=True)
    computed_at = models.DateTimeField(_("计算时间"))

    class Meta:
        verbose_name = _("会员画像")
        verbose_name_plural = _("会员画像")
        constraints = [models.UniqueConstraint(fields=["tenant", "member"], name="uniq_memberprofile_member")]
        indexes = [
            models.Index(fields=["tenant", "rfm_segment"], name="memberprofile_tenant_rfm"),
            models.Index(fields=["tenant", "cluster"], name="memberprofile_tenant_cluster"),
            models.Index(fields=["tenant", "-propensity"], name="memberprofile_tenant_prop"),
        ]


class ItemAffinity(TenantOwnedModel):
    """"Bought A, then also bought B" within a window, over members (not baskets).

    support = share of purchasing members who bought A then B; confidence = of A's buyers, the share
    who then bought B; lift = confidence / share of all buyers who bought B (above 1: more than chance);
    strength = lift at the 95 % lower bound of the confidence, so that a pair seen in few members ranks
    below an equally strong one seen in many.
    """

    item_a = models.ForeignKey("catalog.Item", on_delete=models.CASCADE, related_name="+", db_index=False)
    item_b = models.ForeignKey("catalog.Item", on_delete=models.CASCADE, related_name="+", db_index=False)
    pair_count = models.IntegerField(_("共同购买人数"))
    support = models.FloatField(_("支持度"))
    confidence = models.FloatField(_("置信度"))
    lift = models.FloatField(_("提升度"))
    strength = models.FloatField(_("关联强度"))
    computed_at = models.DateTimeField(_("计算时间"))

    class Meta:
        verbose_name = _("商品关联")
        verbose_name_plural = _("商品关联")
        constraints = [models.UniqueConstraint(fields=["tenant", "item_a", "item_b"], name="uniq_itemaffinity_pair")]
        indexes = [models.Index(fields=["tenant", "-strength"], name="itemaffinity_tenant_strength")]


class Recommendation(TenantOwnedModel):
    """One of a member's top items, with the reason shown to them."""

    class Source(models.TextChoices):
        COPURCHASE = "copurchase", _("常一起购买")
        INTEREST = "interest", _("兴趣品类热门")
        POPULAR = "popular", _("全店热销")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", db_index=False)
    item = models.ForeignKey("catalog.Item", on_delete=models.CASCADE, related_name="+", db_index=False)
    rank = models.SmallIntegerField(_("排名"))
    score = models.FloatField(_("得分"))
    source = models.CharField(_("来源"), max_length=16, choices=Source.choices)
    reason = models.CharField(_("推荐理由"), max_length=200)
    computed_at = models.DateTimeField(_("计算时间"))

    class Meta:
        verbose_name = _("推荐")
        verbose_name_plural = _("推荐")
        constraints = [models.UniqueConstraint(fields=["tenant", "member", "rank"], name="uniq_recommendation_rank")]


class ProfileRun(TenantOwnedModel):
    """One run of the computation for a tenant: when, how it ended, and what it measured."""

    class State(models.TextChoices):
        RUNNING = "running", _("计算中")
        SUCCEEDED = "succeeded", _("完成")
        FAILED = "failed", _("失败")

    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.RUNNING)
    trigger = models.CharField(_("触发方式"), max_length=16, default="beat")
    started_at = models.DateTimeField(_("开始时间"))
    finished_at = models.DateTimeField(_("结束时间"), null=True, blank=True)
    stats = models.JSONField(_("指标"), default=dict, blank=True)
    error = models.TextField(_("错误"), blank=True)

    class Meta:
        verbose_name = _("画像计算")
        verbose_name_plural = _("画像计算")
        indexes = [models.Index(fields=["tenant", "-started_at"], name="profilerun_tenant_started")]
