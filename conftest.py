"""Root fixtures. App fixtures live in tests/<app>/ and are registered here as plugins."""

from __future__ import annotations

import pytest
from django.conf import settings

pytest_plugins = ["tests.fixtures"]


def pytest_configure(config):
    # Tasks run eagerly in tests unless a test starts a real worker (tests/tenants/test_tasks.py).
    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = True
    # A fresh clone has no compiled static manifest; the suite must not depend on collectstatic.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _forget_remembered_tenants():
    """Test databases reuse ids after a rollback: no test may see another's remembered tenant."""
    from tenants.resolvers import forget_tenant

    forget_tenant()
    yield
    forget_tenant()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On PostgreSQL the test database is created and migrated by the owner role."""
    from tenants.db_roles import app_role

    if app_role() is not None:
        from tests.fixtures import use_owner_credentials

        use_owner_credentials()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """After the owner migrated the test database, the suite runs as the RLS-bound app role."""
    from tenants.db_roles import app_role

    role = app_role()
    if role is None:
        yield
        return
    from django.db import connection

    from tests.fixtures import use_app_credentials, use_owner_credentials

    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            # Only in the throwaway test database: transactional tests flush with TRUNCATE.
            cursor.execute(f"GRANT TRUNCATE ON ALL TABLES IN SCHEMA public TO {connection.ops.quote_name(role)}")
        use_app_credentials()
    yield
    with django_db_blocker.unblock():
        use_owner_credentials()
