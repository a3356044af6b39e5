from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.context import TenantContextError, current_tenant, unscoped_reason
from tenants.crypto import EncryptedTextField
from tenants.managers import TenantManager


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("正常")
        SUSPENDED = "suspended", _("已停用")

    slug = models.SlugField(_("标识"), max_length=50, unique=True)
    name = models.CharField(_("名称"), max_length=100)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("商户")
        verbose_name_plural = _("商户")

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class TenantOwnedModel(models.Model):
    """Base of every tenant-owned row: a bigint id, a tenant on every row, a fail-closed manager.

    Subclasses lead their indexes with ``tenant`` and put ``tenant`` in every unique constraint;
    ``tenants.checks`` enforces both, and their migrations add ``tenants.rls.EnableTenantRLS``.
    """

    id = models.BigAutoField(primary_key=True)
    # No index of its own: every model's indexes lead with tenant_id already.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False,
                               editable=False)

    objects = TenantManager()

    class Meta:
        abstract = True

    def assign_tenant(self, tenant: Tenant | None) -> None:
        if tenant is None:
            if unscoped_reason() is not None and self.tenant_id is not None:
                return
            raise TenantContextError(f"Saving {type(self).__name__} needs a tenant in context.")
        if self.tenant_id is None:
            self.tenant = tenant
        elif self.tenant_id != tenant.pk:
            raise TenantContextError(
                f"{type(self).__name__} belongs to tenant {self.tenant_id}, not {tenant.pk} in context."
            )

    def save(self, *args, **kwargs):
        self.assign_tenant(current_tenant())
        super().save(*args, **kwargs)


class MiniProgramApp(models.Model):
    """A tenant's Mini Program; global so that login can find the tenant by appid."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="mini_program")
    appid = models.CharField(_("小程序 AppID"), max_length=32, unique=True)
    app_secret = EncryptedTextField(_("小程序 AppSecret"), blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("小程序")
        verbose_name_plural = _("小程序")

    def __str__(self) -> str:
        return self.appid


def new_notify_token() -> str:
    return secrets.token_urlsafe(24)


class PayAccount(models.Model):
    """A tenant's WeChat Pay merchant account; global so a notify can be routed by its token."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="pay_account")
    mchid = models.CharField(_("商户号"), max_length=32)
    apiv3_key = EncryptedTextField(_("APIv3 密钥"), blank=True)
    merchant_private_key = EncryptedTextField(_("商户 API 私钥"), blank=True)
    merchant_cert_serial = models.CharField(_("商户证书序列号"), max_length=64, blank=True)
    # Public verification material (not secret): platform certificates keyed by serial, and/or the
    # WeChat Pay public key with its id. Both may be set while WeChat switches a merchant over.
    platform_certs = models.JSONField(_("平台证书"), default=dict, blank=True)
    public_key_pem = models.TextField(_("微信支付公钥"), blank=True)
    public_key_id = models.CharField(_("微信支付公钥 ID"), max_length=64, blank=True)
    v2_key = EncryptedTextField(_("APIv2 密钥"), blank=True)
    notify_token = models.CharField(max_length=64, unique=True, default=new_notify_token, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("微信支付账户")
        verbose_name_plural = _("微信支付账户")

    def __str__(self) -> str:
        return self.mchid


class StaffMembership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("所有者")
        MANAGER = "manager", _("经理")
        OPERATOR = "operator", _("运营")
        ANALYST = "analyst", _("分析师")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("角色"), max_length=16, choices=Role.choices)
    is_active = models.BooleanField(_("有效"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("员工")
        verbose_name_plural = _("员工")
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="uniq_membership_tenant_user")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant.slug} ({self.role})"


class AuditEvent(TenantOwnedModel):
    """Who did what in a tenant: credentials, staff, grants. Readable by merchants and regulators."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created")]


class OpsAccessLog(models.Model):
    """Every request a platform operator makes under /ops/ (the unscoped admin)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
