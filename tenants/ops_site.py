"""/ops/: the platform operator's admin site, for superusers only.

Installed in place of ``django.contrib.admin`` (INSTALLED_APPS names ``OpsAdminConfig``), so
``admin.site`` *is* this site and every app's ``@admin.register`` lands here. A staff user who is
not a superuser gets the login page, never an admin page. OpsAuditMiddleware logs each request
and runs it unscoped.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class OpsAdminSite(admin.AdminSite):
    site_header = _("精准 · 平台运营")
    site_title = _("精准 · 平台运营")
    index_title = _("平台运营")
    site_url = "/console/"

    def has_permission(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_superuser)


class OpsAdminConfig(AdminConfig):
    default_site = "tenants.ops_site.OpsAdminSite"
