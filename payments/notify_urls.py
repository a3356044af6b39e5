"""/pay/wechat/: WeChat Pay notify callbacks (CONTRACT.md, "WeChat Pay notify").

The token in the path is the Pay account's unguessable notify token; payment and refund
notifications of API v3 share one URL and are told apart by ``event_type``.
"""

from django.urls import path

from payments import notify_views

app_name = "pay_notify"

urlpatterns = [
    path("v3/<str:token>/", notify_views.notify_v3, name="v3"),
    path("v3/<str:token>/refund/", notify_views.notify_v3, name="v3_refund"),
    path("v2/<str:token>/", notify_views.notify_v2, name="v2"),
]
