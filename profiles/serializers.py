"""Shapes of the member API, for request validation where volume does not matter and for the schema.

The events endpoint does not run ``EventBatchSerializer``: its hot path decodes with msgspec
(``profiles.ingest``). The serializer is kept in step with it so that the OpenAPI schema is exact.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from profiles import ingest


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable snake_case code, e.g. invalid_code, unknown_app.")
    message = serializers.CharField(help_text="For people; may change.")
    details = serializers.DictField(help_text="Extra facts about the error; may be empty.")


class ErrorSerializer(serializers.Serializer):
    """Every 4xx (and 503) answer of the API: {"error": {"code", "message", "details"}}."""

    error = ErrorBodySerializer()


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


AUTH_ERRORS = {
    401: error("`not_authenticated` (no token), `invalid_token` (tampered, wrong kind, member erased), "
               "`token_expired` (refresh it)."),
    403: error("`tenant_suspended`."),
}


# --- sign-in ------------------------------------------------------------------------------------------


class LoginRequestSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=128, help_text="The code from wx.login(); single use.")


class RefreshRequestSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=512)


class TokenPairSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Bearer <token>`.")
    refresh_token = serializers.CharField(help_text="Exchange at /api/v1/auth/refresh for a new pair.")
    expires_in = serializers.IntegerField(help_text="Seconds until `token` expires.")


class ConsentStateSerializer(serializers.Serializer):
    granted = serializers.BooleanField()
    updated_at = serializers.DateTimeField(allow_null=True)


class ConsentSerializer(serializers.Serializer):
    marketing = ConsentStateSerializer(help_text="Subscribe/push messages for marketing.")
    profiling = ConsentStateSerializer(help_text="Profiling and personalised recommendations.")


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    openid = serializers.CharField()
    nickname = serializers.CharField()
    avatar_url = serializers.CharField()
    tier = serializers.CharField()
    points = serializers.IntegerField(help_text="Points balance.")
    consent = ConsentSerializer()
    first_seen_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField(allow_null=True)
    profile = serializers.DictField(allow_null=True, help_text="Profile summary; null until computed.")


class LoginResponseSerializer(TokenPairSerializer):
    member = MemberSerializer()


# --- consent, export ------------------------------------------------------------------------------


class ConsentUpdateSerializer(serializers.Serializer):
    marketing = serializers.BooleanField(required=False)
    profiling = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            wrong = [k for k in ("marketing", "profiling") if k in data and not isinstance(data[k], bool)]
            if wrong:
                raise serializers.ValidationError({k: ["Must be true or false."] for k in wrong})
        return super().to_internal_value(data)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give marketing and/or profiling.")
        return attrs


class ExportSerializer(serializers.Serializer):
    exported_at = serializers.DateTimeField()
    member = serializers.DictField(help_text="The member record, phone included.")
    tags = serializers.ListField(child=serializers.DictField())
    consent_history = serializers.ListField(child=serializers.DictField())
    events = serializers.ListField(child=serializers.DictField())


# --- events ---------------------------------------------------------------------------------------------


@extend_schema_field({"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "format": "int64"}]})
class TimestampField(serializers.Field):
    """ISO 8601 with an offset, or epoch milliseconds."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class EventSerializer(serializers.Serializer):
    event_id = serializers.CharField(min_length=1, max_length=ingest.MAX_EVENT_ID,
                                     help_text="Client-made id; an id seen before counts as a duplicate.")
    kind = serializers.ChoiceField(choices=sorted(ingest.KINDS))
    sku = serializers.CharField(required=False, min_length=1, max_length=ingest.MAX_SKU,
                                help_text="An item of the catalogue (active or not).")
    ts = TimestampField(help_text="ISO 8601 with an offset, or epoch milliseconds (an integer). "
                                         "At most 5 minutes ahead, at most 30 days old.")
    props = serializers.DictField(required=False, help_text=(
        f"A JSON object under {ingest.MAX_PROPS_BYTES} bytes. `purchase` needs `amount_fen` (integer) "
        "and may carry `items`: [{\"sku\", \"qty\"}]."))


class EventBatchSerializer(serializers.Serializer):
    events = serializers.ListField(child=EventSerializer(), max_length=ingest.MAX_EVENTS)


class RejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in `events`, from 0.")
    code = serializers.CharField(help_text=(
        "invalid_event, invalid_event_id, invalid_kind, invalid_ts, ts_in_future, ts_too_old, invalid_sku, "
        "unknown_sku, invalid_props, props_too_large, invalid_amount, invalid_items"))
    message = serializers.CharField()


class EventBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events stored now.")
    duplicates = serializers.IntegerField(help_text="Valid events whose event_id was seen before.")
    rejected = RejectionSerializer(many=True)


# --- recommendations -----------------------------------------------------------------------------------


class RecommendedItemSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    price_fen = serializers.IntegerField()


class RecommendationSerializer(serializers.Serializer):
    item = RecommendedItemSerializer()
    score = serializers.FloatField(help_text="Higher is a stronger suggestion; comparable within one member's list.")
    reason = serializers.CharField(help_text="Why it is suggested, for the member to read, e.g. "
                                             "买过 拿铁 的顾客也常买 黄油可颂.")
    source = serializers.ChoiceField(choices=["copurchase", "interest", "popular"])
