"""State changes of tenants, their credentials and their staff (called by console, commands, admin)."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from django.utils.translation import gettext as _

from tenants import resolvers
from tenants.context import tenant_context
from tenants.models import AuditEvent, MiniProgramApp, PayAccount, StaffMembership, Tenant
from tenants.pay_material import validate_pay_material

APPID_RE = re.compile(r"^wx[0-9a-zA-Z]{14,30}$")
MCHID_RE = re.compile(r"^\d{8,12}$")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
# The console serves /console/<slug>/ beside these pages of its own; a tenant may not shadow one.
RESERVED_SLUGS = frozenset({"login", "logout"})


def audit(tenant: Tenant, action: str, *, actor=None, target: str = "", **details) -> None:
    """Record who did what; never pass secrets in ``details``."""
    with tenant_context(tenant):
        AuditEvent.objects.create(actor=actor, action=action, target=target[:200], details=details)


def _check_appid(appid: str) -> None:
    if not APPID_RE.match(appid):
        raise ValidationError(_("AppID 格式不正确：应以 wx 开头，共 16–32 个字母或数字。"), code="bad_appid")
    if MiniProgramApp.objects.filter(appid=appid).exists():
        raise ValidationError(_("AppID %(appid)s 已被另一个商户使用。") % {"appid": appid}, code="appid_taken")


@transaction.atomic
def create_tenant(*, slug: str, name: str, appid: str | None = None, app_secret: str | None = None,
                  mchid: str | None = None, actor=None) -> Tenant:
    slug = (slug or "").strip().lower()
    name = (name or "").strip()
    if not SLUG_RE.match(slug):
        raise ValidationError(_("标识只能包含小写字母、数字和连字符（1–50 个字符）。"), code="bad_slug")
    if slug in RESERVED_SLUGS:
        raise ValidationError(_("标识 %(slug)s 是保留字，请换一个。") % {"slug": slug}, code="slug_reserved")
    if not name:
        raise ValidationError(_("请填写商户名称。"), code="name_required")
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError(_("标识 %(slug)s 已存在。") % {"slug": slug}, code="slug_taken")
    if appid:
        _check_appid(appid)
    if mchid and not MCHID_RE.match(mchid):
        raise ValidationError(_("商户号应为 8–12 位数字。"), code="bad_mchid")
    tenant = Tenant.objects.create(slug=slug, name=name)
    if appid:
        MiniProgramApp.objects.create(tenant=tenant, appid=appid, app_secret=app_secret or "")
    if mchid:
        PayAccount.objects.create(tenant=tenant, mchid=mchid)
    audit(tenant, "tenant.created", actor=actor, target=slug, appid=appid or "", mchid=mchid or "")
    return tenant


def _forget_now_and_at_commit(tenant_id: int) -> None:
    # At commit too: a request of this process could remember the old row before the change commits.
    resolvers.forget_tenant(tenant_id)
    transaction.on_commit(lambda: resolvers.forget_tenant(tenant_id))


@transaction.atomic
def update_tenant_profile(tenant: Tenant, *, name: str, actor=None) -> Tenant:
    name = (name or "").strip()
    if not name:
        raise ValidationError(_("请填写商户名称。"), code="name_required")
    Tenant.objects.filter(pk=tenant.pk).update(name=name)
    _forget_now_and_at_commit(tenant.pk)
    tenant.name = name
    audit(tenant, "tenant.profile_updated", actor=actor, target=tenant.slug)
    return tenant


@transaction.atomic
def set_tenant_status(tenant: Tenant, status: str, *, actor=None) -> Tenant:
    if status not in Tenant.Status.values:
        raise ValidationError(_("未知状态 %(s)s") % {"s": status}, code="bad_status")
    Tenant.objects.filter(pk=tenant.pk).update(status=status)
    _forget_now_and_at_commit(tenant.pk)
    tenant.status = status
    audit(tenant, f"tenant.{status}", actor=actor, target=tenant.slug)
    return tenant


@transaction.atomic
def set_mini_program(tenant: Tenant, *, appid: str, app_secret: str | None = None, actor=None) -> MiniProgramApp:
    """Set the Mini Program. An empty ``app_secret`` keeps the stored one (write-only field)."""
    appid = (appid or "").strip()
    app = MiniProgramApp.objects.select_for_update().filter(tenant=tenant).first()
    if app is None or app.appid != appid:
        if not APPID_RE.match(appid):
            raise ValidationError(_("AppID 格式不正确：应以 wx 开头，共 16–32 个字母或数字。"), code="bad_appid")
        if MiniProgramApp.objects.filter(appid=appid).exclude(tenant=tenant).exists():
            raise ValidationError(_("AppID %(appid)s 已被另一个商户使用。") % {"appid": appid}, code="appid_taken")
    if app is None:
        app = MiniProgramApp(tenant=tenant)
    app.appid = appid
    changed = ["appid"]
    if app_secret:
        app.app_secret = app_secret.strip()
        changed.append("app_secret")
    app.save()
    audit(tenant, "credentials.mini_program_updated", actor=actor, target=appid, fields=changed)
    return app


PAY_SECRET_FIELDS = ("apiv3_key", "merchant_private_key", "v2_key")


@transaction.atomic
def set_pay_account(tenant: Tenant, *, mchid: str, actor=None, **fields) -> PayAccount:
    """Create or update the Pay account. Secrets given empty or None keep the stored value."""
    mchid = (mchid or "").strip()
    if not MCHID_RE.match(mchid):
        raise ValidationError(_("商户号应为 8–12 位数字。"), code="bad_mchid")
    account = PayAccount.objects.select_for_update().filter(tenant=tenant).first() or PayAccount(tenant=tenant)
    account.mchid = mchid
    changed = ["mchid"]
    for name in ("apiv3_key", "merchant_private_key", "v2_key", "merchant_cert_serial",
                 "public_key_pem", "public_key_id", "platform_certs"):
        value = fields.get(name)
        if value in (None, "", {}):
            continue
        setattr(account, name, value.strip() if isinstance(value, str) else value)
        changed.append(name)
    validate_pay_material(
        apiv3_key=account.apiv3_key, merchant_private_key=account.merchant_private_key,
        merchant_cert_serial=account.merchant_cert_serial, public_key_pem=account.public_key_pem,
        public_key_id=account.public_key_id, platform_certs=account.platform_certs, v2_key=account.v2_key,
    )
    account.save()
    audit(tenant, "credentials.pay_updated", actor=actor, target=mchid, fields=changed)
    return account


@transaction.atomic
def remove_platform_cert(tenant: Tenant, serial: str, *, actor=None) -> PayAccount:
    """Drop one platform certificate (e.g. an expired one) from the tenant's Pay account."""
    account = PayAccount.objects.select_for_update().filter(tenant=tenant).first()
    certs = dict(account.platform_certs or {}) if account else {}
    match = next((s for s in certs if s.upper() == (serial or "").strip().upper()), None)
    if match is None:
        raise ValidationError(_("没有序列号为 %(s)s 的平台证书。") % {"s": serial}, code="unknown_certificate")
    del certs[match]
    account.platform_certs = certs
    account.save(update_fields=["platform_certs", "updated_at"])
    audit(tenant, "credentials.platform_cert_removed", actor=actor, target=account.mchid, serial=match)
    return account


@transaction.atomic
def create_staff(tenant: Tenant, *, username: str, role: str, password: str | None = None,
                 email: str = "", actor=None) -> StaffMembership:
    """Add a console user to ``tenant``; an existing user keeps their password and gains the tenant."""
    username = (username or "").strip()
    if not username:
        raise ValidationError(_("请填写用户名。"), code="username_required")
    if role not in StaffMembership.Role.values:
        raise ValidationError(
            _("角色必须是 %(roles)s 之一。") % {"roles": " / ".join(StaffMembership.Role.values)}, code="bad_role"
        )
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        if not password:
            raise ValidationError(_("新用户需要设置密码。"), code="password_required")
        validate_password(password)
        user = User.objects.create_user(username=username, password=password, email=email)
    elif StaffMembership.objects.filter(user=user, tenant=tenant).exists():
        raise ValidationError(
            _("%(u)s 已是 %(t)s 的员工。") % {"u": username, "t": tenant.slug}, code="already_member"
        )
    try:
        with transaction.atomic():
            membership = StaffMembership.objects.create(user=user, tenant=tenant, role=role)
    except IntegrityError:
        raise ValidationError(_("%(u)s 已是 %(t)s 的员工。") % {"u": username, "t": tenant.slug},
                              code="already_member") from None
    audit(tenant, "staff.added", actor=actor, target=username, role=role)
    return membership


@transaction.atomic
def change_staff_role(tenant: Tenant, membership_id: int, role: str, *, actor=None) -> StaffMembership:
    membership = StaffMembership.objects.select_for_update().get(pk=membership_id, tenant=tenant)
    if role not in StaffMembership.Role.values:
        raise ValidationError(_("未知角色。"), code="bad_role")
    _keep_an_owner(tenant, membership, new_role=role, active=membership.is_active)
    membership.role = role
    membership.save(update_fields=["role"])
    audit(tenant, "staff.role_changed", actor=actor, target=membership.user.get_username(), role=role)
    return membership


@transaction.atomic
def set_staff_active(tenant: Tenant, membership_id: int, active: bool, *, actor=None) -> StaffMembership:
    membership = StaffMembership.objects.select_for_update().get(pk=membership_id, tenant=tenant)
    _keep_an_owner(tenant, membership, new_role=membership.role, active=active)
    membership.is_active = active
    membership.save(update_fields=["is_active"])
    audit(tenant, "staff.activated" if active else "staff.deactivated", actor=actor,
          target=membership.user.get_username())
    return membership


def _keep_an_owner(tenant: Tenant, membership: StaffMembership, *, new_role: str, active: bool) -> None:
    if membership.role != StaffMembership.Role.OWNER or (new_role == StaffMembership.Role.OWNER and active):
        return
    others = StaffMembership.objects.filter(tenant=tenant, role=StaffMembership.Role.OWNER, is_active=True)
    if not others.exclude(pk=membership.pk).exists():
        raise ValidationError(_("商户至少要保留一位有效的所有者。"), code="last_owner")


def suggest_slug(name: str) -> str:
    return slugify(name)[:50] or "tenant"
