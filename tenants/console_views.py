"""The console shell (login, tenant switcher, dashboard) and the tenant settings pages.

Views under ``/console/<tenant_slug>/`` run inside the tenant's context: ConsoleTenantMiddleware
resolves the tenant from the slug (404 for non-members), sets ``request.tenant`` and
``request.membership``, and refuses analysts' writes. Here we only decide the finer rule: settings
are changed by the owner; everyone else reads.
"""

from __future__ import annotations

import hashlib
import json

from cryptography.hazmat.primitives import serialization
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tenants import actions, console_nav, queries, resolvers, roles
from tenants.crypto import mask_secret
from tenants.forms import (
    MiniProgramForm,
    PayAccountForm,
    RemovePlatformCertForm,
    StaffAddForm,
    StaffUpdateForm,
    TenantProfileForm,
    add_action_errors,
)
from tenants.models import StaffMembership
from tenants.pay_material import load_certificate, load_private_key, load_public_key
from tenants.pay_notify import notify_url_v2, notify_url_v3

AUDIT_PAGE_SIZE = 50

# Audit actions in words; an action without a label is shown by its code.
AUDIT_LABELS = {
    "tenant.created": gettext_lazy("创建商户"),
    "tenant.profile_updated": gettext_lazy("修改商户信息"),
    "tenant.active": gettext_lazy("恢复商户服务"),
    "tenant.suspended": gettext_lazy("停用商户服务"),
    "credentials.mini_program_updated": gettext_lazy("修改小程序设置"),
    "credentials.pay_updated": gettext_lazy("修改微信支付设置"),
    "credentials.platform_cert_removed": gettext_lazy("删除平台证书"),
    "staff.added": gettext_lazy("添加员工"),
    "staff.role_changed": gettext_lazy("修改员工角色"),
    "staff.activated": gettext_lazy("恢复员工账号"),
    "staff.deactivated": gettext_lazy("停用员工账号"),
}


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The tenant switcher: straight into the only tenant, else a list."""
    memberships = list(resolvers.memberships_of(request.user))
    if len(memberships) == 1:
        return redirect("console:dashboard", tenant_slug=memberships[0].tenant.slug)
    return render(request, "console/home.html", {"memberships": memberships})


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    app = queries.mini_program_of(tenant)
    account = queries.pay_account_of(tenant)
    links = [link for link in console_nav.links(tenant.slug) if link.key != "settings"]
    return render(request, "console/dashboard.html", {
        "links": links,
        "staff_count": queries.active_staff_count(tenant),
        "mini_program": app,
        "pay_account": account,
    })


@require_GET
def section(request: HttpRequest, section: str) -> HttpResponse:
    """Where a navigation entry leads until its app mounts its console pages."""
    nav_entry = console_nav.entry(section)
    if nav_entry is None:
        raise Http404(_("没有这个页面"))
    url, available = console_nav.resolve_entry(nav_entry, request.tenant.slug)
    if available:
        return redirect(url)
    return render(request, "console/section.html", {"section": nav_entry})


# --- settings -----------------------------------------------------------------------------------

def _refuse(request: HttpRequest) -> HttpResponse:
    return render(request, "console/forbidden.html",
                  {"reason": _("只有商户所有者可以修改这些设置。")}, status=403)


def _settings_page(request: HttpRequest, template: str, tab: str, **context) -> HttpResponse:
    return render(request, f"console/settings/{template}", {"tab": tab, **context})


@require_http_methods(["GET", "HEAD", "POST"])
def settings_profile(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    can_edit = roles.can_manage_credentials(request.membership.role)
    form = TenantProfileForm(initial={"name": tenant.name})
    if request.method == "POST":
        if not can_edit:
            return _refuse(request)
        form = TenantProfileForm(request.POST)
        if form.is_valid():
            try:
                actions.update_tenant_profile(tenant, name=form.cleaned_data["name"], actor=request.user)
            except ValidationError as exc:
                add_action_errors(form, exc)
            else:
                messages.success(request, _("商户信息已保存。"))
                return redirect("console:settings", tenant_slug=tenant.slug)
    return _settings_page(request, "profile.html", "profile", form=form, can_edit=can_edit)


@require_http_methods(["GET", "HEAD", "POST"])
def settings_mini_program(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    can_edit = roles.can_manage_credentials(request.membership.role)
    app = queries.mini_program_of(tenant)
    form = MiniProgramForm(initial={"appid": app.appid if app else ""})
    if request.method == "POST":
        if not can_edit:
            return _refuse(request)
        form = MiniProgramForm(request.POST)
        if form.is_valid():
            try:
                actions.set_mini_program(tenant, appid=form.cleaned_data["appid"],
                                         app_secret=form.cleaned_data["app_secret"], actor=request.user)
            except ValidationError as exc:
                add_action_errors(form, exc)
            else:
                messages.success(request, _("小程序设置已保存。"))
                return redirect("console:settings_mini_program", tenant_slug=tenant.slug)
    return _settings_page(request, "mini_program.html", "mini_program", form=form, can_edit=can_edit,
                          app=app, secret_status=mask_secret(app.app_secret) if app else "")


def _fingerprint(public_key) -> str:
    """A short SHA-256 of the public half, so the owner can tell which key is stored."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).hexdigest()[:16].upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _pay_status(account) -> dict:
    if account is None:
        return {}
    status = {
        "apiv3_key": mask_secret(account.apiv3_key),
        "v2_key": mask_secret(account.v2_key),
        "private_key_fingerprint": "",
        "public_key_fingerprint": "",
        "platform_certs": [],
    }
    if account.merchant_private_key:
        try:
            status["private_key_fingerprint"] = _fingerprint(load_private_key(account.merchant_private_key)
                                                             .public_key())
        except ValidationError:
            status["private_key_fingerprint"] = "?"
    if account.public_key_pem:
        try:
            status["public_key_fingerprint"] = _fingerprint(load_public_key(account.public_key_pem))
        except ValidationError:
            status["public_key_fingerprint"] = "?"
    for serial, pem in sorted((account.platform_certs or {}).items()):
        try:
            expires = load_certificate(pem).not_valid_after_utc
        except ValidationError:
            expires = None
        status["platform_certs"].append({"serial": serial, "expires": expires})
    return status


@require_http_methods(["GET", "HEAD", "POST"])
def settings_pay(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    can_edit = roles.can_manage_credentials(request.membership.role)
    account = queries.pay_account_of(tenant)
    initial = {}
    if account is not None:
        initial = {"mchid": account.mchid, "merchant_cert_serial": account.merchant_cert_serial,
                   "public_key_id": account.public_key_id}
    form = PayAccountForm(initial=initial)
    if request.method == "POST":
        if not can_edit:
            return _refuse(request)
        form = PayAccountForm(request.POST, request.FILES)
        if form.is_valid():
            stored = dict(account.platform_certs or {}) if account else {}
            try:
                actions.set_pay_account(tenant, actor=request.user, **form.action_kwargs(stored))
            except ValidationError as exc:
                add_action_errors(form, exc)
            else:
                messages.success(request, _("微信支付设置已保存。"))
                return redirect("console:settings_pay", tenant_slug=tenant.slug)
    context = {"form": form, "can_edit": can_edit, "account": account, "status": _pay_status(account)}
    if account is not None and can_edit:
        # The token only routes notifications; still, only the owner needs to see it.
        context["notify_urls"] = {"v3": notify_url_v3(account), "v2": notify_url_v2(account)}
    return _settings_page(request, "pay.html", "pay", **context)


@require_POST
def settings_pay_remove_cert(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    if not roles.can_manage_credentials(request.membership.role):
        return _refuse(request)
    form = RemovePlatformCertForm(request.POST)
    if form.is_valid():
        try:
            actions.remove_platform_cert(tenant, form.cleaned_data["serial"], actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("平台证书 %(s)s 已删除。") % {"s": form.cleaned_data["serial"]})
    return redirect("console:settings_pay", tenant_slug=tenant.slug)


@require_http_methods(["GET", "HEAD", "POST"])
def settings_staff(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    can_edit = roles.can_manage_staff(request.membership.role)
    form = StaffAddForm()
    if request.method == "POST":
        if not can_edit:
            return _refuse(request)
        form = StaffAddForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                membership = actions.create_staff(tenant, username=data["username"], role=data["role"],
                                                  password=data["password"] or None, email=data["email"],
                                                  actor=request.user)
            except ValidationError as exc:
                add_action_errors(form, exc)
            else:
                messages.success(request, _("已添加员工 %(u)s（%(r)s）。") % {
                    "u": membership.user.get_username(), "r": membership.get_role_display()})
                return redirect("console:settings_staff", tenant_slug=tenant.slug)
    return _settings_page(request, "staff.html", "staff", form=form, can_edit=can_edit,
                          staff=queries.staff_of(tenant), roles=StaffMembership.Role.choices)


@require_POST
def settings_staff_update(request: HttpRequest, membership_id: int) -> HttpResponse:
    tenant = request.tenant
    if not roles.can_manage_staff(request.membership.role):
        return _refuse(request)
    try:
        membership = queries.get_membership(tenant, membership_id)
    except StaffMembership.DoesNotExist:
        raise Http404(_("没有这位员工")) from None
    form = StaffUpdateForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请求无效，请重试。"))
        return redirect("console:settings_staff", tenant_slug=tenant.slug)
    op = form.cleaned_data["op"]
    username = membership.user.get_username()
    try:
        if op == "role":
            membership = actions.change_staff_role(tenant, membership.pk, form.cleaned_data["role"],
                                                   actor=request.user)
            messages.success(request, _("%(u)s 的角色已改为%(r)s。") % {
                "u": username, "r": membership.get_role_display()})
        else:
            actions.set_staff_active(tenant, membership.pk, op == "activate", actor=request.user)
            messages.success(request, (_("已恢复 %(u)s 的账号。") if op == "activate"
                                       else _("已停用 %(u)s 的账号。")) % {"u": username})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("console:settings_staff", tenant_slug=tenant.slug)


@require_GET
def settings_audit(request: HttpRequest) -> HttpResponse:
    page = Paginator(queries.audit_events(request.tenant), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{
        "event": event,
        "label": AUDIT_LABELS.get(event.action, event.action),
        "details": json.dumps(event.details, ensure_ascii=False, sort_keys=True) if event.details else "",
    } for event in page.object_list]
    return _settings_page(request, "audit.html", "audit", page_obj=page, rows=rows)
