"""The coupon and points routes, mounted under /api/v1/."""

from django.urls import path

from campaigns import api

urlpatterns = [
    path("coupons", api.CouponListView.as_view(), name="api-coupons"),
    path("coupons/<int:template_id>/claim", api.ClaimView.as_view(), name="api-coupon-claim"),
    path("coupons/<int:template_id>/exchange", api.ExchangeView.as_view(), name="api-coupon-exchange"),
    path("me/coupons", api.MyCouponsView.as_view(), name="api-me-coupons"),
    path("me/points", api.MyPointsView.as_view(), name="api-me-points"),
]
