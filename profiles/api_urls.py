"""The member API's routes, mounted under /api/v1/."""

from django.urls import path

from profiles import api

urlpatterns = [
    path("auth/wx-login", api.WxLoginView.as_view(), name="api-wx-login"),
    path("auth/refresh", api.RefreshView.as_view(), name="api-auth-refresh"),
    path("me", api.MeView.as_view(), name="api-me"),
    path("me/consent", api.ConsentView.as_view(), name="api-me-consent"),
    path("me/export", api.ExportView.as_view(), name="api-me-export"),
    path("me/recommendations", api.RecommendationsView.as_view(), name="api-me-recommendations"),
    path("events", api.EventsView.as_view(), name="api-events"),
]
