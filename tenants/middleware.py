"""The console edge: resolve the tenant from the URL once, check membership and role, open the context."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from tenants import resolvers, roles
from tenants.context import current_tenant, tenant_context, unscoped, unscoped_reason
from tenants.models import OpsAccessLog

logger = logging.getLogger("jingzhun.tenancy")

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class TenantContextGuardMiddleware:
    """A request must start and end with no tenant in context: a leak would be a cross-tenant bug."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self._check("before", request)
        response = self.get_response(request)
        self._check("after", request)
        return response

    @staticmethod
    def _check(when: str, request: HttpRequest) -> None:
        if current_tenant() is not None or unscoped_reason() is not None:
            message = f"tenant context leaked {when} {request.method} {request.path}"
            logger.error(message)
            if settings.DEBUG:
                raise RuntimeError(message)


def _render_now(response):
    # A TemplateResponse renders after process_view returns, i.e. outside the tenant context.
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    return response


class ConsoleTenantMiddleware:
    """Runs console views for ``/console/<tenant_slug>/…`` inside that tenant's context.

    Unknown slug and "not a member" both give the same 404. A suspended tenant gives 403; an
    analyst's writes give 403.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        slug = view_kwargs.get("tenant_slug")
        if slug is None or not request.path.startswith("/console/"):
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = resolvers.membership(request.user, slug)
        if membership is None:
            raise Http404(_("没有这个商户"))
        tenant = membership.tenant
        request.tenant = tenant
        request.membership = membership
        if not tenant.is_active:
            return render(request, "console/suspended.html", {"tenant": tenant}, status=403)
        if request.method not in SAFE_METHODS and not roles.can_change(membership.role):
            return render(request, "console/forbidden.html", {"tenant": tenant}, status=403)
        kwargs = {k: v for k, v in view_kwargs.items() if k != "tenant_slug"}
        with tenant_context(tenant):
            return _render_now(view_func(request, *view_args, **kwargs))


class OpsAuditMiddleware:
    """/ops/ is the platform operator's unscoped admin: superusers only, every request logged."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.path.startswith("/ops/") or not request.user.is_authenticated:
            return None
        if not request.user.is_superuser:
            return None  # the admin site itself refuses them
        OpsAccessLog.objects.create(user=request.user, method=request.method, path=request.path[:500])
        with unscoped(reason=f"ops admin {request.user.get_username()} {request.method} {request.path}"):
            return _render_now(view_func(request, *view_args, **view_kwargs))
