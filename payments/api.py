"""Mini Program order API (CONTRACT.md): create, pay, read. Thin: the actions do the work."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from payments import actions, queries
from payments.exceptions import OrderNotFound, PaymentsError
from payments.models import Order
from payments.pay_results import BEIJING
from profiles.authentication import MemberAPIView, MemberTokenAuthentication
from tenants.api import APIError
from tenants.context import tenant_context


def api_error(exc: PaymentsError | OrderNotFound) -> APIError:
    if isinstance(exc, OrderNotFound):
        return APIError("not_found", "No such order.", status.HTTP_404_NOT_FOUND)
    return APIError(exc.code, exc.message, exc.status, exc.details)


def _time(value) -> str | None:
    return value.astimezone(BEIJING).isoformat() if value else None


def order_json(order: Order) -> dict[str, Any]:
    return {
        "out_trade_no": order.out_trade_no,
        "client_order_id": order.client_order_id,
        "state": order.state,
        "subtotal_fen": order.subtotal_fen,
        "discount_fen": order.discount_fen,
        "payable_fen": order.payable_fen,
        "refunded_fen": order.refunded_fen,
        "coupon": order.coupon.code if order.coupon_id else None,
        "lines": [
            {"sku": line.sku, "name": line.name, "qty": line.qty, "unit_price_fen": line.unit_price_fen,
             "amount_fen": line.amount_fen, "discount_fen": line.discount_fen}
            for line in sorted(order.lines.all(), key=lambda line: line.pk)
        ],
        "created_at": _time(order.created_at),
        "expires_at": _time(order.expires_at),
        "paid_at": _time(order.paid_at),
    }


class LineIn(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    qty = serializers.IntegerField(min_value=1, max_value=actions.MAX_QTY)


class OrderIn(serializers.Serializer):
    client_order_id = serializers.CharField(max_length=64)
    lines = LineIn(many=True, allow_empty=False)
    coupon = serializers.JSONField(required=False, allow_null=True,
                                   help_text="The coupon's code (string) or id (integer).")


class LineOut(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    qty = serializers.IntegerField()
    unit_price_fen = serializers.IntegerField()
    amount_fen = serializers.IntegerField()
    discount_fen = serializers.IntegerField()


class OrderOut(serializers.Serializer):
    out_trade_no = serializers.CharField()
    client_order_id = serializers.CharField()
    state = serializers.ChoiceField(choices=Order.State.values)
    subtotal_fen = serializers.IntegerField()
    discount_fen = serializers.IntegerField()
    payable_fen = serializers.IntegerField()
    refunded_fen = serializers.IntegerField()
    coupon = serializers.CharField(allow_null=True)
    lines = LineOut(many=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)


PayParams = inline_serializer("PayParams", {
    "appId": serializers.CharField(), "timeStamp": serializers.CharField(), "nonceStr": serializers.CharField(),
    "package": serializers.CharField(), "signType": serializers.CharField(), "paySign": serializers.CharField(),
})


class OrderCreateView(MemberAPIView):
    @extend_schema(request=OrderIn, responses={201: OrderOut, 200: OrderOut}, operation_id="orders_create")
    def post(self, request):
        data = OrderIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            order, created = actions.create_order(
                request.tenant, request.member, client_order_id=data.validated_data["client_order_id"],
                lines=[dict(line) for line in data.validated_data["lines"]],
                coupon=data.validated_data.get("coupon"),
            )
        except PaymentsError as exc:
            raise api_error(exc) from exc
        return Response(order_json(order), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderDetailView(MemberAPIView):
    @extend_schema(responses=OrderOut, operation_id="orders_retrieve")
    def get(self, request, out_trade_no: str):
        try:
            order = queries.get_member_order(request.member.pk, out_trade_no)
        except OrderNotFound as exc:
            raise api_error(exc) from exc
        return Response(order_json(order))


class OrderPayView(APIView):
    """Not a tenant view on purpose: the WeChat prepay call must not sit inside a database transaction."""

    authentication_classes = [MemberTokenAuthentication]

    @extend_schema(request=None, responses=PayParams, operation_id="orders_pay")
    def post(self, request, out_trade_no: str):
        auth = request.auth
        tenant = getattr(auth, "tenant", None)
        if tenant is None:
            raise APIError("not_authenticated", "Authentication credentials were not provided.", 401)
        if not tenant.is_active:
            raise APIError("tenant_suspended", "This merchant's service is suspended.", status.HTTP_403_FORBIDDEN)
        with tenant_context(tenant):
            member = auth.member
        try:
            return Response(actions.prepare_payment(tenant, member, out_trade_no))
        except (PaymentsError, OrderNotFound) as exc:
            raise api_error(exc) from exc
