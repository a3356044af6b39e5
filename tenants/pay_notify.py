"""The notify URLs a tenant's WeChat Pay account is reached at (CONTRACT.md, "WeChat Pay notify").

The path carries the account's unguessable notify token, never the tenant's slug or id: WeChat
forbids a query string in ``notify_url``, and a guessable path would let anyone probe merchants.
"""

from __future__ import annotations

from django.conf import settings

from tenants.models import PayAccount


def notify_url_v3(account: PayAccount) -> str:
    return f"{settings.PUBLIC_BASE_URL}/pay/wechat/v3/{account.notify_token}/"


def notify_url_v2(account: PayAccount) -> str:
    return f"{settings.PUBLIC_BASE_URL}/pay/wechat/v2/{account.notify_token}/"
