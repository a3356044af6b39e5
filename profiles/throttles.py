"""Sign-in throttles, per client IP and per Mini Program, on the shared Django cache (Redis in production).

Rates come from settings (``WX_LOGIN_RATE_PER_IP``, ``WX_LOGIN_RATE_PER_APP``; DRF's "N/period"
form) so an operator can raise them for a large merchant without a release.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

DEFAULT_RATE_PER_IP = "60/min"
DEFAULT_RATE_PER_APP = "3000/min"


class _SettingsRateThrottle(SimpleRateThrottle):
    setting_name = ""
    default_rate = ""

    def get_rate(self) -> str:
        return getattr(settings, self.setting_name, self.default_rate)

    def get_ident(self, request) -> str:
        # X-Forwarded-For is the client's to write unless a known number of proxies sets it;
        # trusting it by default would let anyone pick a fresh "IP" per request.
        if api_settings.NUM_PROXIES is None:
            return request.META.get("REMOTE_ADDR", "")
        return super().get_ident(request)


class LoginPerIPThrottle(_SettingsRateThrottle):
    scope = "wx_login_ip"
    setting_name = "WX_LOGIN_RATE_PER_IP"
    default_rate = DEFAULT_RATE_PER_IP

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginPerAppThrottle(_SettingsRateThrottle):
    scope = "wx_login_app"
    setting_name = "WX_LOGIN_RATE_PER_APP"
    default_rate = DEFAULT_RATE_PER_APP

    def get_cache_key(self, request, view) -> str | None:
        appid = request.headers.get("X-WX-AppId", "").strip()[:64]
        if not appid:
            return None
        return self.cache_format % {"scope": self.scope, "ident": appid}
