"""/api/v1/: the Mini Program API (CONTRACT.md). Each app contributes its own routes."""


urlpatterns: list = [
]
