"""/api/v1/: the Mini Program API (CONTRACT.md). Each app contributes its own routes."""

from django.urls import include, path

from catalog.api import ItemListView
from payments.api import OrderCreateView, OrderDetailView, OrderPayView
from profiles.authentication import MemberTokenAuthentication

urlpatterns: list = [
    path("", include("profiles.api_urls")),
    path("", include("campaigns.api_urls")),
    # catalog sits below profiles, so the member authentication is attached here.
    path("items", ItemListView.as_view(authentication_classes=[MemberTokenAuthentication]), name="api-items"),
    path("orders", OrderCreateView.as_view(), name="api-orders"),
    path("orders/<str:out_trade_no>", OrderDetailView.as_view(), name="api-order"),
    path("orders/<str:out_trade_no>/pay", OrderPayView.as_view(), name="api-order-pay"),
]
