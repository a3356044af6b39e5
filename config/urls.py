from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="console:home", permanent=False)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("console/", include("tenants.console_urls")),
    path("console/<slug:tenant_slug>/members/", include("profiles.console_urls")),
    path("console/<slug:tenant_slug>/catalog/", include("catalog.console_urls")),
    path("console/<slug:tenant_slug>/orders/", include("payments.console_urls")),
    path("console/<slug:tenant_slug>/coupons/", include("campaigns.console_urls")),
    path("ops/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("pay/wechat/", include("payments.notify_urls")),
]

if settings.WECHAT_SANDBOX:
    urlpatterns.append(path("sandbox/wechat/", include("wechat.sandbox.urls")))
