"""Named lookups of the global tables (tenant, membership, Mini Program, Pay account).

These are the only places that read them; everything else receives a resolved tenant.
"""

from __future__ import annotations

import copy
import time

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from tenants.credentials import MiniProgramCredentials, PayCredentials
from tenants.models import MiniProgramApp, PayAccount, StaffMembership, Tenant


def tenant_by_id(tenant_id: int) -> Tenant | None:
    return Tenant.objects.filter(pk=tenant_id).first()


# tenant id -> (monotonic expiry, Tenant). Per process, unbounded only by the number of tenants.
_recent_tenants: dict[int, tuple[float, Tenant]] = {}


def recent_tenant_by_id(tenant_id: int) -> Tenant | None:
    """``tenant_by_id`` remembered for ``TENANT_CACHE_SECONDS`` in this process.

    The Mini Program API resolves the token's tenant on every call; a query per request cost more
    CPU than the claim it guards. The price is that suspending a tenant reaches other processes up to
    that many seconds late (this process forgets at once, see ``forget_tenant``). Each caller gets its
    own copy, so nothing one request sets on it leaks into the next.
    """
    ttl = settings.TENANT_CACHE_SECONDS
    now = time.monotonic()
    hit = _recent_tenants.get(tenant_id)
    if hit is not None and hit[0] > now:
        return copy.copy(hit[1])
    tenant = tenant_by_id(tenant_id)
    if tenant is not None and ttl > 0:
        _recent_tenants[tenant_id] = (now + ttl, tenant)
    return copy.copy(tenant) if tenant is not None else None


def forget_tenant(tenant_id: int | None = None) -> None:
    """Drop this process's remembered tenant (all of them with no id)."""
    if tenant_id is None:
        _recent_tenants.clear()
    else:
        _recent_tenants.pop(tenant_id, None)


def tenant_by_slug(slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def membership(user: AbstractBaseUser, slug: str) -> StaffMembership | None:
    """The user's active membership of the tenant ``slug``; None for unknown slug and non-member alike."""
    if not user.is_authenticated:
        return None
    return (
        StaffMembership.objects.select_related("tenant")
        .filter(user=user, tenant__slug=slug, is_active=True)
        .first()
    )


def memberships_of(user: AbstractBaseUser) -> QuerySet[StaffMembership]:
    return StaffMembership.objects.select_related("tenant").filter(user=user, is_active=True).order_by("tenant__name")


def mini_program_by_appid(appid: str) -> MiniProgramApp | None:
    return MiniProgramApp.objects.select_related("tenant").filter(appid=appid).first()


def mini_program_credentials(appid: str) -> MiniProgramCredentials | None:
    app = mini_program_by_appid(appid)
    if app is None:
        return None
    return MiniProgramCredentials(tenant_id=app.tenant_id, appid=app.appid, secret=app.app_secret)


def mini_program_credentials_for(tenant: Tenant) -> MiniProgramCredentials | None:
    app = MiniProgramApp.objects.filter(tenant=tenant).first()
    if app is None:
        return None
    return MiniProgramCredentials(tenant_id=tenant.pk, appid=app.appid, secret=app.app_secret)


def _pay_credentials(account: PayAccount) -> PayCredentials:
    app = MiniProgramApp.objects.filter(tenant_id=account.tenant_id).first()
    return PayCredentials(
        tenant_id=account.tenant_id,
        mchid=account.mchid,
        appid=app.appid if app else "",
        apiv3_key=account.apiv3_key,
        merchant_private_key_pem=account.merchant_private_key,
        merchant_cert_serial=account.merchant_cert_serial,
        platform_certs=dict(account.platform_certs or {}),
        public_key_pem=account.public_key_pem,
        public_key_id=account.public_key_id,
        v2_key=account.v2_key,
        notify_token=account.notify_token,
    )


def pay_account_by_notify_token(token: str) -> PayAccount | None:
    return PayAccount.objects.select_related("tenant").filter(notify_token=token).first()


def pay_credentials_for(tenant: Tenant) -> PayCredentials | None:
    account = PayAccount.objects.filter(tenant=tenant).first()
    return _pay_credentials(account) if account else None


def pay_credentials_by_mchid(mchid: str) -> PayCredentials | None:
    account = PayAccount.objects.filter(mchid=mchid).order_by("pk").first()
    return _pay_credentials(account) if account else None


def pay_credentials_by_notify_token(token: str) -> PayCredentials | None:
    account = pay_account_by_notify_token(token)
    return _pay_credentials(account) if account else None
