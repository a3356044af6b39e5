"""Shapes of the coupon and points API (answers are built as dicts; these keep the schema exact)."""

from __future__ import annotations

from rest_framework import serializers

from campaigns.models import Coupon, CouponTemplate


class TemplateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    # Plain strings with the values listed: a ChoiceField named "kind"/"state" would collide with the
    # event kinds and order states in the schema's enum names.
    kind = serializers.CharField(help_text="One of: " + ", ".join(CouponTemplate.Kind.values))
    value = serializers.IntegerField(help_text="Fen off (cash_off, instant_off) or percent off (percent_off).")
    threshold_fen = serializers.IntegerField()
    cap_fen = serializers.IntegerField(allow_null=True)
    exchange_sku = serializers.CharField(allow_null=True)
    stackable = serializers.BooleanField()
    stock = serializers.IntegerField(allow_null=True, help_text="null: unlimited")
    remaining = serializers.IntegerField(allow_null=True)
    per_member_limit = serializers.IntegerField(help_text="0: unlimited")
    points_cost = serializers.IntegerField()
    valid_from = serializers.DateTimeField(allow_null=True)
    valid_until = serializers.DateTimeField(allow_null=True)
    valid_days = serializers.IntegerField(allow_null=True)
    start_delay_days = serializers.IntegerField()


class ClaimableSerializer(TemplateSerializer):
    claimed_by_me = serializers.IntegerField()


class QuoteSerializer(serializers.Serializer):
    applies = serializers.BooleanField()
    discount_fen = serializers.IntegerField()
    eligible_subtotal_fen = serializers.IntegerField()
    reason = serializers.CharField(help_text="Why it does not apply: below_threshold, no_eligible_items, "
                                             "exchange_item_missing, not_yet_valid, coupon_expired, …")


class CouponSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    state = serializers.CharField(help_text="One of: " + ", ".join(Coupon.State.values))
    channel = serializers.CharField()
    claimed_at = serializers.DateTimeField()
    valid_from = serializers.DateTimeField()
    valid_until = serializers.DateTimeField(allow_null=True)
    used_at = serializers.DateTimeField(allow_null=True)
    template = TemplateSerializer()
    quote = QuoteSerializer(required=False, help_text="Only with ?lines=: what it saves on that cart.")


class PointsEntrySerializer(serializers.Serializer):
    delta = serializers.IntegerField()
    balance_after = serializers.IntegerField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class PointsSerializer(serializers.Serializer):
    points = serializers.IntegerField()
    tier = serializers.CharField()
    ledger = PointsEntrySerializer(many=True)
