"""/api/v1/: the Mini Program API (CONTRACT.md). Each app contributes its own routes."""

from django.urls import include, path

urlpatterns: list = [
    path("", include("profiles.api_urls")),
]
