"""Mini Program coupon API: claimable templates, claim (Idempotency-Key), my coupons priced for a cart."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from campaigns import actions, queries
from campaigns import serializers as s
from campaigns.actions.claim_batches import ClaimsUnavailable
from campaigns.exceptions import CouponError, NotFound
from campaigns.models import ClaimCounter, Coupon, CouponTemplate, PointsEntry
from campaigns.scope import within
from profiles.authentication import MemberAPIView, TokenRejected
from profiles.queries import MemberNotFound
from profiles.serializers import AUTH_ERRORS, error
from tenants.api import APIError

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Any string up to 100 characters, unique per claim attempt; a retry with the same key "
                "answers 200 with the coupon the first attempt issued instead of claiming again.",
)
LINES = OpenApiParameter(
    "lines", str, OpenApiParameter.QUERY, required=False,
    description="A cart as `sku:qty` pairs separated by commas (`A001:2,B002:1`): each coupon then carries "
                "`quote`, what it takes off that cart at catalogue prices.",
)
CLAIM_ERRORS = {
    404: error("`not_found`: no such coupon (also another merchant's)."),
    409: error("`sold_out`, `limit_reached`, `not_active`, `channel_not_allowed`, `idempotency_conflict` "
               "(the key was used for another coupon)."),
    503: error("`claims_unavailable`: no answer in time (the claim may still be issued); retry after "
               "`Retry-After` seconds with the same Idempotency-Key."),
}


def api_error(exc: CouponError | NotFound) -> APIError:
    if isinstance(exc, NotFound):
        return APIError("not_found", "No such coupon.", status.HTTP_404_NOT_FOUND)
    return APIError(exc.code, exc.message, exc.status, exc.details)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def template_data(t: CouponTemplate, exchange_skus: dict[int, str] | None = None) -> dict[str, Any]:
    return {
        "id": t.pk, "name": t.name, "description": t.description, "kind": t.kind, "value": t.value,
        "threshold_fen": t.threshold_fen, "cap_fen": t.cap_fen,
        "exchange_sku": (exchange_skus or {}).get(t.exchange_item_id) if t.exchange_item_id else None,
        "stackable": t.stackable, "stock": t.stock, "remaining": t.remaining,
        "per_member_limit": t.per_member_limit, "points_cost": t.points_cost,
        "valid_from": _iso(t.valid_from), "valid_until": _iso(t.valid_until), "valid_days": t.valid_days,
        "start_delay_days": t.start_delay_days,
    }


def _exchange_skus(templates, tenant=None) -> dict[int, str]:
    """SKUs of the templates' exchange items; ``tenant`` when the caller holds no tenant unit."""
    from catalog.models import Item

    ids = {t.exchange_item_id for t in templates if t.exchange_item_id}
    if not ids:
        return {}
    with within(tenant) if tenant is not None else nullcontext():
        return dict(Item.objects.filter(pk__in=ids).values_list("pk", "sku"))


def coupon_data(c: Coupon, skus: dict[int, str] | None = None) -> dict[str, Any]:
    return {
        "id": c.pk, "code": c.code, "state": c.state, "channel": c.channel, "claimed_at": _iso(c.claimed_at),
        "valid_from": _iso(c.valid_from), "valid_until": _iso(c.valid_until), "used_at": _iso(c.used_at),
        "template": template_data(c.template, skus),
    }


def parse_lines(raw: str) -> list[tuple[str, int]]:
    pairs = []
    for index, part in enumerate(p for p in raw.split(",") if p.strip()):
        sku, _, qty = part.strip().rpartition(":")
        if not sku or not qty.isdigit() or not 1 <= int(qty) <= 999:
            raise APIError("invalid_lines", "lines must look like SKU:QTY,SKU:QTY with 1 ≤ QTY ≤ 999.",
                           details={"index": index, "part": part[:80]})
        pairs.append((sku, int(qty)))
    if len(pairs) > 100:
        raise APIError("invalid_lines", "At most 100 lines.")
    return pairs


class CouponListView(MemberAPIView):
    @extend_schema(operation_id="coupons_list", summary="Coupons the member can claim",
                   responses={200: s.ClaimableSerializer(many=True), **AUTH_ERRORS})
    def get(self, request):
        templates = queries.claimable_templates()
        counts = dict(ClaimCounter.objects.filter(member=request.member, template__in=[t.pk for t in templates])
                      .values_list("template_id", "count"))
        skus = _exchange_skus(templates)
        return Response([{**template_data(t, skus), "claimed_by_me": counts.get(t.pk, 0)} for t in templates])


class ClaimView(MemberAPIView):
    # A flash sale's one hot endpoint: the claim statement checks the member itself, and commits
    # (releasing the template's stock row) before the response is built.
    load_member = False
    tenant_unit = "action"

    @extend_schema(operation_id="coupons_claim", summary="Claim one coupon", request=None,
                   parameters=[IDEMPOTENCY_KEY],
                   responses={201: s.CouponSerializer, 200: s.CouponSerializer, **CLAIM_ERRORS, **AUTH_ERRORS})
    def post(self, request, template_id: int):
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 100:
            raise APIError("invalid_idempotency_key", "Idempotency-Key is at most 100 characters.")
        try:
            result = actions.claim_coupon(request.tenant, template_id, request.member, idempotency_key=key)
        except (CouponError, NotFound) as exc:
            raise api_error(exc) from None
        except MemberNotFound:
            raise TokenRejected() from None
        except ClaimsUnavailable:
            raise APIError("claims_unavailable", "Claims are not being answered right now; retry shortly.",
                           status.HTTP_503_SERVICE_UNAVAILABLE, retry_after=ClaimsUnavailable.retry_after) from None
        skus = _exchange_skus([result.coupon.template], request.tenant)
        return Response(coupon_data(result.coupon, skus),
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class ExchangeView(MemberAPIView):
    @extend_schema(operation_id="coupons_exchange", summary="Exchange points for a coupon", request=None,
                   parameters=[IDEMPOTENCY_KEY],
                   responses={201: s.CouponSerializer, 200: s.CouponSerializer,
                              404: CLAIM_ERRORS[404],
                              409: error("`insufficient_points`, `not_exchangeable`, and the claim errors."),
                              **AUTH_ERRORS})
    def post(self, request, template_id: int):
        key = request.headers.get("Idempotency-Key", "").strip()[:100]
        try:
            result = actions.exchange_points_for_coupon(request.tenant, request.member, template_id,
                                                        idempotency_key=key)
        except (CouponError, NotFound) as exc:
            raise api_error(exc) from None
        return Response(coupon_data(result.coupon, _exchange_skus([result.coupon.template])),
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class MyCouponsView(MemberAPIView):
    @extend_schema(
        operation_id="me_coupons", summary="The member's coupons, optionally priced for a cart",
        parameters=[OpenApiParameter("state", str, OpenApiParameter.QUERY, required=False,
                                     enum=Coupon.State.values), LINES],
        responses={200: s.CouponSerializer(many=True),
                   400: error("`invalid_lines`, `unknown_sku` (details.skus lists them)."), **AUTH_ERRORS},
    )
    def get(self, request):
        state = request.query_params.get("state") or None
        if state is not None and state not in Coupon.State.values:
            raise APIError("invalid_state", f"state is one of {', '.join(Coupon.State.values)}.")
        coupons = list(queries.member_coupons(request.member, state=state)[:500])
        skus = _exchange_skus([c.template for c in coupons])
        rows = [coupon_data(c, skus) for c in coupons]
        raw = request.query_params.get("lines")
        if raw is not None:
            lines, unknown = queries.price_lines(parse_lines(raw))
            if unknown:
                raise APIError("unknown_sku", "Some items are not on sale.", details={"skus": unknown})
            for row, coupon in zip(rows, coupons, strict=True):
                q = queries.quote_coupon(coupon, lines)
                row["quote"] = {"applies": q.applies, "discount_fen": q.discount_fen,
                                "eligible_subtotal_fen": q.eligible_subtotal_fen, "reason": q.reason}
        return Response(rows)


class MyPointsView(MemberAPIView):
    @extend_schema(operation_id="me_points", summary="The member's points balance, tier and recent ledger",
                   responses={200: s.PointsSerializer, **AUTH_ERRORS})
    def get(self, request):
        member = request.member
        entries = PointsEntry.objects.filter(member=member).order_by("-id")[:100]
        return Response({
            "points": int(member.points), "tier": member.tier,
            "ledger": [{"delta": e.delta, "balance_after": e.balance_after, "reason": e.reason,
                        "at": _iso(e.created_at)} for e in entries],
        })
