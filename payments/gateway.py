"""The tenant's WeChat Pay client and the notify URL we hand to WeChat with each request."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from payments.exceptions import PaymentsError
from tenants import resolvers
from tenants.credentials import PayCredentials
from tenants.models import Tenant
from wechat.payv3 import PayV3Client


def credentials(tenant: Tenant) -> PayCredentials:
    creds = resolvers.pay_credentials_for(tenant)
    if creds is None or not (creds.mchid and creds.appid and creds.apiv3_key and creds.merchant_private_key_pem):
        raise PaymentsError("pay_not_configured")
    return creds


def client_for(tenant: Tenant) -> PayV3Client:
    return PayV3Client(credentials(tenant))


def notify_url_v3(creds: PayCredentials) -> str:
    return settings.PUBLIC_BASE_URL + reverse("pay_notify:v3", kwargs={"token": creds.notify_token})
