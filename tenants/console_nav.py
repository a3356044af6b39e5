"""The console's left navigation: one registry, so a section lights up once its app mounts its URLs.

Each app mounts its console with its own namespace, e.g. in config/urls.py
``path("console/<slug:tenant_slug>/members/", include("profiles.console_urls"))`` with
``app_name = "members"`` and an ``index`` view. Until that URL name exists, the entry points at
the "coming soon" page ``console:section``, so the layout never breaks on a missing section.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class NavEntry:
    key: str
    label: str | Promise
    url_name: str


NAV: list[NavEntry] = [
    NavEntry("members", _("会员"), "members:index"),
    NavEntry("segments", _("人群"), "segments:index"),
    NavEntry("coupons", _("优惠券"), "coupons:index"),
    NavEntry("campaigns", _("营销活动"), "campaigns:index"),
    NavEntry("orders", _("订单"), "orders:index"),
    NavEntry("reports", _("报表"), "reports:index"),
    NavEntry("settings", _("设置"), "console:settings"),
]


def register(entry: NavEntry, *, before: str | None = None) -> None:
    """Add a section (e.g. from an app's ``ready()``); re-registering a key replaces it in place."""
    for index, existing in enumerate(NAV):
        if existing.key == entry.key:
            NAV[index] = entry
            return
    keys = [e.key for e in NAV]
    NAV.insert(keys.index(before) if before in keys else len(NAV), entry)


def entry(key: str) -> NavEntry | None:
    return next((e for e in NAV if e.key == key), None)


@dataclass(frozen=True)
class NavLink:
    key: str
    label: str | Promise
    url: str
    available: bool
    active: bool


def resolve_entry(nav_entry: NavEntry, tenant_slug: str) -> tuple[str, bool]:
    """The entry's URL for this tenant, and whether its app is mounted yet."""
    try:
        return reverse(nav_entry.url_name, kwargs={"tenant_slug": tenant_slug}), True
    except NoReverseMatch:
        return reverse("console:section", kwargs={"tenant_slug": tenant_slug, "section": nav_entry.key}), False


def links(tenant_slug: str, current_path: str = "") -> list[NavLink]:
    result = []
    for nav_entry in NAV:
        url, available = resolve_entry(nav_entry, tenant_slug)
        result.append(NavLink(nav_entry.key, nav_entry.label, url, available,
                              active=bool(current_path) and current_path.startswith(url)))
    return result
