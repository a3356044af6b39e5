"""The project's URLs plus the WeChat sandbox, whatever WECHAT_SANDBOX was when config.urls loaded."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *[p for p in project_urlpatterns if not str(p.pattern).startswith("sandbox/")],
    path("sandbox/wechat/", include("wechat.sandbox.urls")),
]
