"""Filters and tags every console page uses: money in fen, Shanghai time, the left navigation."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from django import template
from django.utils import dateformat
from django.utils.translation import gettext

from tenants import console_nav as nav
from tenants.models import StaffMembership

register = template.Library()

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_TIME_FORMAT = "Y-m-d H:i"


@register.filter
def fen(value) -> str:
    """Integer fen as yuan: 1234 → ¥12.34, 123456789 → ¥1,234,567.89, -5 → -¥0.05."""
    if value is None or value == "":
        return ""
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return ""
    sign = "-" if amount < 0 else ""
    yuan, cents = divmod(abs(amount), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"


@register.filter
def shanghai(value, fmt: str = DEFAULT_TIME_FORMAT) -> str:
    """An aware datetime shown in Asia/Shanghai whatever the active time zone; dates as they are."""
    if not value:
        return ""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(SHANGHAI)
        return dateformat.format(value, fmt)
    if isinstance(value, datetime.date):
        return dateformat.format(value, fmt if fmt != DEFAULT_TIME_FORMAT else "Y-m-d")
    return str(value)


@register.simple_tag(takes_context=True, name="console_nav")
def console_nav_links(context) -> list[nav.NavLink]:
    """``{% console_nav as links %}``: the sections of the current tenant's console."""
    tenant = context.get("tenant")
    if tenant is None:
        return []
    request = context.get("request")
    return nav.links(tenant.slug, request.path if request is not None else "")


@register.simple_tag
def console_section_url(key: str, tenant_slug: str) -> str:
    """The URL of one navigation section for a tenant (its page, or "coming soon" until mounted)."""
    nav_entry = nav.entry(key)
    if nav_entry is None:
        return ""
    return nav.resolve_entry(nav_entry, tenant_slug)[0]


@register.filter
def role_label(role: str) -> str:
    try:
        return StaffMembership.Role(role).label
    except ValueError:
        return role


@register.filter
def stored_label(value: str) -> str:
    """A label computed and stored in the default language (e.g. "新客·已下单"), shown in the
    viewer's: each "·"-separated part is a catalogue msgid, so it translates at display time."""
    if not value:
        return value
    return "·".join(gettext(part) for part in str(value).split("·"))
