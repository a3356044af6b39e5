"""Mini Program member API: sign-in, tokens, the member's own record, consent, export, erasure, events."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from profiles import actions, ingest, login, queries
from profiles import serializers as s
from profiles.authentication import MemberAPIView
from profiles.computation import queries as profile_queries
from profiles.throttles import LoginPerAppThrottle, LoginPerIPThrottle
from tenants.api import APIError

APPID_HEADER = OpenApiParameter(
    "X-WX-AppId", str, OpenApiParameter.HEADER, required=True, description="The Mini Program's AppID."
)
THROTTLED = s.error("`throttled` (too many sign-ins from this IP or for this Mini Program; see Retry-After) "
                    "or `wechat_rate_limited` (WeChat's own per-user limit).")


class WxLoginView(APIView):
    authentication_classes: list = []
    throttle_classes = [LoginPerIPThrottle, LoginPerAppThrottle]

    @extend_schema(
        operation_id="auth_wx_login",
        summary="Sign in with a wx.login() code",
        parameters=[APPID_HEADER],
        request=s.LoginRequestSerializer,
        responses={
            200: s.LoginResponseSerializer,
            400: s.error("`invalid` (no code), `missing_app_id`, `invalid_code` (WeChat 40029/40163)."),
            403: s.error("`tenant_suspended`, `wechat_user_blocked` (WeChat 40226)."),
            404: s.error("`unknown_app`: no Mini Program with this AppID."),
            429: THROTTLED,
            503: s.error("`wechat_unavailable` (WeChat busy or unreachable; retry), `wechat_misconfigured` "
                         "(the merchant's AppID/AppSecret are wrong: 40013/40125)."),
        },
        auth=[],
    )
    def post(self, request):
        appid = request.headers.get("X-WX-AppId", "").strip()
        if not appid:
            raise APIError("missing_app_id", "Send the Mini Program's AppID in the X-WX-AppId header.")
        body = s.LoginRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = login.wx_login(appid, body.validated_data["code"])
        return Response({**result.tokens, "member": queries.member_summary(result.member)})


class RefreshView(APIView):
    authentication_classes: list = []
    throttle_classes = [LoginPerIPThrottle]

    def get_authenticate_header(self, request) -> str:
        # A refused refresh token is a 401 (sign in again), which DRF gives only with this header.
        return 'Bearer realm="api"'

    @extend_schema(
        operation_id="auth_refresh",
        summary="Exchange a refresh token for a new token pair",
        request=s.RefreshRequestSerializer,
        responses={
            200: s.TokenPairSerializer,
            400: s.error("`invalid`: no refresh_token."),
            401: s.error("`invalid_token`, `token_expired` (sign in again)."),
            403: s.error("`tenant_suspended`."),
            429: s.error("`throttled`."),
        },
        auth=[],
    )
    def post(self, request):
        body = s.RefreshRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(login.refresh(body.validated_data["refresh_token"]))


class MeView(MemberAPIView):
    @extend_schema(operation_id="me_retrieve", summary="The signed-in member",
                   responses={200: s.MemberSerializer, **s.AUTH_ERRORS})
    def get(self, request):
        return Response(queries.member_summary(request.member))

    @extend_schema(
        operation_id="me_erase",
        summary="Erase everything held about the member",
        description="Personal fields are blanked, tags, consent history and events deleted, other apps' "
        "records deleted or anonymised. The token stops working; signing in again creates a new member.",
        request=None,
        responses={204: OpenApiResponse(description="Erased."), **s.AUTH_ERRORS},
    )
    def delete(self, request):
        actions.erase_member(request.tenant, member=request.member)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConsentView(MemberAPIView):
    @extend_schema(
        operation_id="me_consent_update",
        summary="Grant or withdraw consent",
        description="Each change is recorded as a history row; sending the current value records nothing.",
        request=s.ConsentUpdateSerializer,
        responses={200: s.MemberSerializer, 400: s.error("`invalid`: neither field given, or not a boolean."),
                   **s.AUTH_ERRORS},
    )
    def patch(self, request):
        body = s.ConsentUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actions.set_consent(request.tenant, member=request.member, **body.validated_data)
        return Response(queries.member_summary(request.member))


class ExportView(MemberAPIView):
    @extend_schema(operation_id="me_export", summary="Everything held about the member",
                   responses={200: s.ExportSerializer, **s.AUTH_ERRORS})
    def get(self, request):
        return Response(queries.export_member(request.member))


class EventsView(MemberAPIView):
    @extend_schema(
        operation_id="events_create",
        summary="Report a batch of behaviour events",
        description=f"At most {ingest.MAX_EVENTS} events. Each is checked on its own: a bad event is rejected "
        "with its index, never the whole batch. An event_id seen before (in this batch or an earlier one) "
        "counts as a duplicate and is not stored again.",
        request=s.EventBatchSerializer,
        responses={
            200: s.EventBatchResultSerializer,
            400: s.error(f"`batch_too_large` (more than {ingest.MAX_EVENTS} events), `invalid_batch` "
                         '(not {"events": [...]}), `malformed_json`. Nothing is stored.'),
            413: s.error("`payload_too_large`."),
            415: s.error("`unsupported_media_type`: send application/json."),
            **s.AUTH_ERRORS,
        },
    )
    def post(self, request):
        if request.content_type.split(";")[0].strip() != "application/json":
            raise APIError("unsupported_media_type", "Send the batch as application/json.",
                           status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
        try:
            body = request._request.body
        except RequestDataTooBig:
            raise APIError("payload_too_large", "The body is too large.",
                           status.HTTP_413_REQUEST_ENTITY_TOO_LARGE) from None
        try:
            result = actions.record_events(request.tenant, body, member=request.member)
        except ingest.BatchError as exc:
            raise APIError(exc.code, exc.message) from None
        return Response({"accepted": result.accepted, "duplicates": result.duplicates,
                         "rejected": result.rejected})


class RecommendationsView(MemberAPIView):
    @extend_schema(
        operation_id="me_recommendations",
        summary="Items suggested to the member, best first, each with its reason",
        description="From the last profile computation. Empty for a member who refused profiling (consent "
        "`profiling` false) and before the first computation; items taken off sale are left out.",
        responses={200: s.RecommendationSerializer(many=True), **s.AUTH_ERRORS},
    )
    def get(self, request):
        return Response(profile_queries.recommendations_for(request.member))
