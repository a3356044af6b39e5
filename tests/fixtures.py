"""Fixtures shared by every app's tests: two look-alike tenants, staff per role, clean context."""

from __future__ import annotations

import dj_database_url
import pytest
from django.conf import settings
from django.db import connections

from tenants.context import current_tenant, tenant_context, unscoped_reason

ROLES = ["owner", "manager", "operator", "analyst"]
PASSWORD = "correct-horse-battery"


def _switch_credentials(url: str) -> None:
    parsed = dj_database_url.parse(url)
    conn = connections["default"]
    conn.close()
    for key in ("USER", "PASSWORD", "HOST", "PORT"):
        conn.settings_dict[key] = parsed.get(key)
        settings.DATABASES["default"][key] = parsed.get(key)


def use_owner_credentials() -> None:
    _switch_credentials(settings.MIGRATION_DATABASE_URL)


def use_app_credentials() -> None:
    _switch_credentials(settings.DATABASE_URL)


postgres_only = pytest.mark.skipif(
    not settings.USING_POSTGRES, reason="needs PostgreSQL (set DATABASE_URL; .ci/run does)"
)


@pytest.fixture(autouse=True)
def _tenant_context_is_empty_after_each_test():
    assert current_tenant() is None, "a tenant context leaked into this test"
    yield
    assert current_tenant() is None, "this test left a tenant in context"
    assert unscoped_reason() is None, "this test left an unscoped() block open"


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield


def make_tenant(slug: str, name: str, appid: str | None = None, secret: str = "sandbox-secret-0001"):
    from tenants import actions

    return actions.create_tenant(slug=slug, name=name, appid=appid, app_secret=secret if appid else None)


@pytest.fixture
def tenant_a(db):
    return make_tenant("shop-a", "Shop A", appid="wxa0000000000000a1")


@pytest.fixture
def tenant_b(db):
    # Look-alike on purpose: same name shape, same secret; tests prove nothing crosses over.
    return make_tenant("shop-b", "Shop B", appid="wxb0000000000000b1")


@pytest.fixture
def in_tenant_a(tenant_a):
    with tenant_context(tenant_a):
        yield tenant_a


def make_staff(tenant, username: str, role: str):
    from tenants import actions

    return actions.create_staff(tenant, username=username, role=role, password=PASSWORD)


@pytest.fixture
def staff_factory(db):
    return make_staff


@pytest.fixture
def owner_a(tenant_a):
    return make_staff(tenant_a, "owner-a", "owner").user


@pytest.fixture
def owner_b(tenant_b):
    return make_staff(tenant_b, "owner-b", "owner").user
