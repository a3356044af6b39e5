"""/console/: the shell and the tenant settings. Other apps mount their pages beside these under
``console/<slug:tenant_slug>/<section>/`` (see tenants.console_nav)."""

from django.urls import path

from tenants import console_views as views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    # Before <tenant_slug>/: these names are reserved slugs (tenants.actions.RESERVED_SLUGS).
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("<slug:tenant_slug>/", views.dashboard, name="dashboard"),
    path("<slug:tenant_slug>/s/<slug:section>/", views.section, name="section"),
    path("<slug:tenant_slug>/settings/", views.settings_profile, name="settings"),
    path("<slug:tenant_slug>/settings/mini-program/", views.settings_mini_program, name="settings_mini_program"),
    path("<slug:tenant_slug>/settings/pay/", views.settings_pay, name="settings_pay"),
    path("<slug:tenant_slug>/settings/pay/remove-cert/", views.settings_pay_remove_cert,
         name="settings_pay_remove_cert"),
    path("<slug:tenant_slug>/settings/staff/", views.settings_staff, name="settings_staff"),
    path("<slug:tenant_slug>/settings/staff/<int:membership_id>/", views.settings_staff_update,
         name="settings_staff_update"),
    path("<slug:tenant_slug>/settings/audit/", views.settings_audit, name="settings_audit"),
]
