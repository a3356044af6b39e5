"""The sandbox plus a stand-in merchant notify endpoint, so these tests need no business app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from wechat.errors import NotifyRejected
from wechat.notify import verify_notification

# token -> PayCredentials; filled by fixtures
ACCOUNTS: dict = {}
RECEIVED: list = []
FORCED_STATUS: dict = {}


@csrf_exempt
def notify_receiver(request: HttpRequest, token: str) -> HttpResponse:
    if token in FORCED_STATUS:
        return HttpResponse(status=FORCED_STATUS[token])
    try:
        notification = verify_notification(request.headers, request.body, ACCOUNTS[token])
    except NotifyRejected as exc:
        return JsonResponse({"code": "FAIL", "message": exc.message}, status=exc.http_status)
    RECEIVED.append(notification)
    return HttpResponse(status=204)


urlpatterns = [
    path("sandbox/wechat/", include("wechat.sandbox.urls")),
    path("pay/wechat/test/<str:token>/", notify_receiver),
]
