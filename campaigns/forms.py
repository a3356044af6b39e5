"""Console forms: merchants type yuan and SKUs; the actions get fen and ids and give errors in words."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.actions.coupons import FROZEN_AFTER_ISSUE
from campaigns.actions.points import MAX_EXPIRE_MONTHS
from campaigns.models import Channel, CouponTemplate, LoyaltySettings
from catalog.models import Category, Item

GATED = [(c.value, c.label) for c in (Channel.SELF_CLAIM, Channel.STAFF, Channel.CAMPAIGN, Channel.POINTS)]
MONEY = {"max_digits": 12, "decimal_places": 2, "min_value": Decimal("0")}
DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def fen(yuan: Decimal | None) -> int | None:
    return None if yuan is None else int((yuan * 100).to_integral_value())


def yuan(fen_value: int | None) -> Decimal | None:
    return None if fen_value is None else Decimal(fen_value) / 100


class TemplateForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("名称"), max_length=64)
    description = forms.CharField(label=gettext_lazy("说明"), max_length=500, required=False,
                                  widget=forms.Textarea(attrs={"rows": 2}))
    kind = forms.ChoiceField(label=gettext_lazy("类型"), choices=CouponTemplate.Kind.choices)
    value_yuan = forms.DecimalField(label=gettext_lazy("面值（元）"), required=False, **MONEY,
                                    help_text=gettext_lazy("满减券、立减券减去的金额"))
    percent = forms.IntegerField(label=gettext_lazy("折扣（减 %）"), required=False, min_value=1, max_value=99,
                                 help_text=gettext_lazy("折扣券：20 表示减 20%，即八折"))
    threshold_yuan = forms.DecimalField(label=gettext_lazy("使用门槛（满多少元）"), required=False, **MONEY)
    cap_yuan = forms.DecimalField(label=gettext_lazy("最高优惠（元）"), required=False, **MONEY,
                                  help_text=gettext_lazy("留空表示不封顶"))
    exchange_sku = forms.CharField(label=gettext_lazy("兑换商品 SKU"), required=False, max_length=64)
    item_skus = forms.CharField(label=gettext_lazy("适用商品 SKU"), required=False,
                                help_text=gettext_lazy("多个用逗号分隔；商品和分类都留空表示全部商品"))
    categories = forms.MultipleChoiceField(label=gettext_lazy("适用分类"), required=False,
                                           widget=forms.CheckboxSelectMultiple)
    excluded_skus = forms.CharField(label=gettext_lazy("排除商品 SKU"), required=False)
    excluded_categories = forms.MultipleChoiceField(label=gettext_lazy("排除分类"), required=False,
                                                    widget=forms.CheckboxSelectMultiple)
    stackable = forms.BooleanField(label=gettext_lazy("可与其他券叠加"), required=False)
    channels = forms.MultipleChoiceField(label=gettext_lazy("发放渠道"), choices=GATED, required=False,
                                         widget=forms.CheckboxSelectMultiple)
    points_cost = forms.IntegerField(label=gettext_lazy("兑换所需积分"), required=False, min_value=0)
    stock = forms.IntegerField(label=gettext_lazy("总库存"), required=False, min_value=0,
                               help_text=gettext_lazy("留空表示不限"))
    per_member_limit = forms.IntegerField(label=gettext_lazy("每人限领"), min_value=0, initial=1,
                                          help_text=gettext_lazy("0 表示不限"))
    valid_days = forms.IntegerField(label=gettext_lazy("领取后有效天数"), required=False, min_value=1,
                                    help_text=gettext_lazy("填写则按领取时间计算有效期"))
    start_delay_days = forms.IntegerField(label=gettext_lazy("领取后几天生效"), required=False, min_value=0,
                                          initial=0)
    valid_from = forms.DateTimeField(label=gettext_lazy("生效时间"), required=False, widget=DATETIME)
    valid_until = forms.DateTimeField(label=gettext_lazy("失效时间"), required=False, widget=DATETIME,
                                      help_text=gettext_lazy("固定有效期的结束时间；也是领取的截止时间"))

    FIELD_OF = {"value": "value_yuan", "threshold_fen": "threshold_yuan", "cap_fen": "cap_yuan",
                "exchange_item": "exchange_sku", "item_ids": "item_skus", "excluded_item_ids": "excluded_skus",
                "category_ids": "categories", "excluded_category_ids": "excluded_categories"}

    def __init__(self, *args, template: CouponTemplate | None = None, **kwargs):
        if template is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(template)
        super().__init__(*args, **kwargs)
        choices = [(str(c.pk), c.name) for c in Category.objects.order_by("name")]
        self.fields["categories"].choices = choices
        self.fields["excluded_categories"].choices = choices
        self.frozen = bool(template and template.issued)
        if self.frozen:
            frozen_fields = {self.FIELD_OF.get(n, n) for n in FROZEN_AFTER_ISSUE} | {"percent"}
            for name in frozen_fields & set(self.fields):
                self.fields[name].disabled = True

    @staticmethod
    def initial_for(t: CouponTemplate) -> dict[str, Any]:
        skus = dict(Item.objects.filter(pk__in=[*t.item_ids, *t.excluded_item_ids,
                                                *([t.exchange_item_id] if t.exchange_item_id else [])])
                    .values_list("pk", "sku"))
        return {
            "name": t.name, "description": t.description, "kind": t.kind,
            "value_yuan": yuan(t.value) if t.kind in ("cash_off", "instant_off") else None,
            "percent": t.value if t.kind == "percent_off" else None,
            "threshold_yuan": yuan(t.threshold_fen), "cap_yuan": yuan(t.cap_fen),
            "exchange_sku": skus.get(t.exchange_item_id, ""),
            "item_skus": ", ".join(skus.get(i, "") for i in t.item_ids),
            "excluded_skus": ", ".join(skus.get(i, "") for i in t.excluded_item_ids),
            "categories": [str(c) for c in t.category_ids],
            "excluded_categories": [str(c) for c in t.excluded_category_ids],
            "stackable": t.stackable, "channels": t.channels, "points_cost": t.points_cost, "stock": t.stock,
            "per_member_limit": t.per_member_limit, "valid_days": t.valid_days,
            "start_delay_days": t.start_delay_days, "valid_from": t.valid_from, "valid_until": t.valid_until,
        }

    def _item_ids(self, name: str) -> list[int]:
        skus = [s.strip() for s in (self.cleaned_data.get(name) or "").replace("，", ",").split(",") if s.strip()]
        found = dict(Item.objects.filter(sku__in=skus).values_list("sku", "pk"))
        missing = [s for s in skus if s not in found]
        if missing:
            self.add_error(name, _("没有这些商品：%(skus)s") % {"skus": ", ".join(missing)})
        return [found[s] for s in skus if s in found]

    def action_fields(self) -> dict[str, Any]:
        """What the create/update action takes; call after is_valid()."""
        d = self.cleaned_data
        kind = d["kind"]
        value = (d.get("percent") or 0) if kind == "percent_off" else (fen(d.get("value_yuan")) or 0)
        exchange = None
        if d.get("exchange_sku"):
            exchange = Item.objects.filter(sku=d["exchange_sku"].strip()).values_list("pk", flat=True).first()
            if exchange is None:
                self.add_error("exchange_sku", _("没有这个商品。"))
        return {
            "name": d["name"], "description": d.get("description") or "", "kind": kind, "value": value,
            "threshold_fen": fen(d.get("threshold_yuan")) or 0, "cap_fen": fen(d.get("cap_yuan")),
            "exchange_item": exchange if kind == "exchange" else None,
            "item_ids": self._item_ids("item_skus"), "excluded_item_ids": self._item_ids("excluded_skus"),
            "category_ids": [int(c) for c in d.get("categories") or []],
            "excluded_category_ids": [int(c) for c in d.get("excluded_categories") or []],
            "stackable": bool(d.get("stackable")), "channels": list(d.get("channels") or []),
            "points_cost": d.get("points_cost") or 0, "stock": d.get("stock"),
            "per_member_limit": d.get("per_member_limit") or 0, "valid_days": d.get("valid_days"),
            "start_delay_days": d.get("start_delay_days") or 0, "valid_from": d.get("valid_from"),
            "valid_until": d.get("valid_until"),
        }

    def add_action_errors(self, exc: ValidationError) -> None:
        kind = self.cleaned_data.get("kind")
        for field, messages in exc.message_dict.items():
            target = "percent" if field == "value" and kind == "percent_off" else self.FIELD_OF.get(field, field)
            for message in messages:
                self.add_error(target if target in self.fields else None, message)


class GrantForm(forms.Form):
    MODES = [("one", gettext_lazy("单个会员")), ("list", gettext_lazy("粘贴或上传 openid 名单")),
             ("filter", gettext_lazy("按等级 / 标签筛选"))]
    mode = forms.ChoiceField(label=gettext_lazy("发放给"), choices=MODES, widget=forms.RadioSelect, initial="one")
    openid = forms.CharField(label=gettext_lazy("会员 openid"), required=False, max_length=64)
    openids = forms.CharField(label=gettext_lazy("openid 名单"), required=False,
                              widget=forms.Textarea(attrs={"rows": 4}),
                              help_text=gettext_lazy("每行一个，或用逗号分隔"))
    openid_file = forms.FileField(label=gettext_lazy("或上传名单文件（.txt / .csv，每行一个）"), required=False)
    tier = forms.ChoiceField(label=gettext_lazy("等级"), required=False)
    tags = forms.MultipleChoiceField(label=gettext_lazy("标签（任一）"), required=False,
                                     widget=forms.CheckboxSelectMultiple)
    reason = forms.CharField(label=gettext_lazy("发放原因"), max_length=200,
                             help_text=gettext_lazy("会记录在审计日志中，商户和监管可查"))
    nonce = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, tiers: list[str], tags: list[tuple[int, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].choices = [("", _("不限")), *[(t, t) for t in tiers]]
        self.fields["tags"].choices = [(str(pk), name) for pk, name in tags]

    def clean(self):
        data = super().clean()
        mode = data.get("mode")
        if mode == "one" and not (data.get("openid") or "").strip():
            self.add_error("openid", _("请填写会员的 openid。"))
        if mode == "list":
            upload = data.get("openid_file")
            text = data.get("openids") or ""
            if upload is not None:
                if upload.size > 8 * 1024 * 1024:
                    self.add_error("openid_file", _("文件不能超过 8 MB。"))
                else:
                    text += "\n" + upload.read().decode("utf-8-sig", errors="replace")
            if not text.strip():
                self.add_error("openids", _("请粘贴或上传 openid 名单。"))
            data["list_text"] = text
        return data


class RevokeForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("撤销原因"), max_length=200)


class LoyaltyForm(forms.Form):
    points_per_yuan = forms.IntegerField(label=gettext_lazy("每消费 1 元得积分"), min_value=0, max_value=1000)
    tier_basis = forms.ChoiceField(label=gettext_lazy("等级依据"), choices=LoyaltySettings.Basis.choices)
    new_member_template = forms.TypedChoiceField(label=gettext_lazy("新会员券"), required=False, coerce=int,
                                                 empty_value=None)
    # Not required: a post without them (an older page) leaves the saved values as they are.
    points_expire_months = forms.IntegerField(
        label=gettext_lazy("积分有效期（月）"), required=False, min_value=0, max_value=MAX_EXPIRE_MONTHS,
        help_text=gettext_lazy("某天获得的积分可用到 N 个月后的同一天（含当天），先获得的先用；0 表示永不过期"))
    return_coupon_on_refund = forms.ChoiceField(
        label=gettext_lazy("退款后退还优惠券"), required=False, choices=LoyaltySettings.CouponReturn.choices,
        help_text=gettext_lazy("订单全额退款后，用过的券若仍在有效期内，退回会员可再次使用"))

    def __init__(self, *args, templates: list[CouponTemplate], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_member_template"].choices = [("", _("不发"))] + [(t.pk, t.name) for t in templates]


class TierForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("等级名称"), max_length=32)
    threshold = forms.IntegerField(label=gettext_lazy("门槛"), min_value=0,
                                   help_text=gettext_lazy("按累计积分：积分数；按累计消费：金额（分）"))
    earn_multiplier_pct = forms.IntegerField(label=gettext_lazy("积分倍率（%）"), min_value=1, max_value=1000,
                                             initial=100)
    monthly_template = forms.TypedChoiceField(label=gettext_lazy("每月赠券"), required=False, coerce=int,
                                              empty_value=None)
    benefits = forms.CharField(label=gettext_lazy("权益说明"), max_length=500, required=False)

    def __init__(self, *args, templates: list[CouponTemplate], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["monthly_template"].choices = [("", _("无"))] + [(t.pk, t.name) for t in templates]


class AdjustPointsForm(forms.Form):
    delta = forms.IntegerField(label=gettext_lazy("调整积分（可为负数）"))
    note = forms.CharField(label=gettext_lazy("原因"), max_length=200)
