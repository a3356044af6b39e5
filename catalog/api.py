"""``GET /api/v1/items``: the active catalogue for the Mini Program, in sku order, keyset-paged.

The catalogue sits below ``profiles`` in the import order, so this view does not name the member
authentication: ``config/api_urls.py`` mounts it with ``authentication_classes`` set, and
``TenantAPIView`` refuses any caller whose ``request.auth`` carries no tenant.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from catalog import queries
from tenants.api import TenantAPIView

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


class ItemSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField(source="category.name")
    price_fen = serializers.IntegerField(help_text="Price in fen (分), an integer.")


class ItemQuerySerializer(serializers.Serializer):
    category = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                     help_text="Only items of the category with this exact name.")
    after = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                  help_text="The sku after which the page starts (the previous page's X-Next-After).")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)


class ItemListView(TenantAPIView):
    @extend_schema(
        operation_id="items_list",
        summary="The catalogue: active items in sku order",
        description="Active items of the member's merchant, optionally of one category, in sku order. "
        "Prices are integer fen and are the ones orders will charge.",
        parameters=[
            ItemQuerySerializer,
            OpenApiParameter("X-Next-After", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                             description="Present when more items follow: the last sku, URL-encoded."),
            OpenApiParameter("Link", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200],
                             description='Present when more items follow: `<next page URL>; rel="next"`.'),
        ],
        responses={
            200: OpenApiResponse(
                ItemSerializer(many=True),
                description="At most `limit` items. When more follow, the `X-Next-After` header holds the last "
                "sku, URL-encoded, to pass as `after=` for the next page, and `Link` the next page's URL "
                "(rel=\"next\").",
            ),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="`invalid`: a bad `limit`."),
            401: OpenApiResponse(OpenApiTypes.OBJECT, description="No or bad member token."),
        },
    )
    def get(self, request):
        params = ItemQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit = params.validated_data["limit"]
        category = params.validated_data.get("category", "")
        items = queries.active_items_page(category=category, after_sku=params.validated_data.get("after", ""),
                                          limit=limit + 1)
        headers = {}
        if len(items) > limit:
            items = items[:limit]
            after = items[-1].sku
            query = {"limit": limit, "after": after, **({"category": category} if category else {})}
            headers["X-Next-After"] = quote(after, safe="")
            headers["Link"] = f'<{request.build_absolute_uri(request.path)}?{urlencode(query)}>; rel="next"'
        return Response(ItemSerializer(items, many=True).data, headers=headers)
