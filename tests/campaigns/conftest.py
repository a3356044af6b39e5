"""Coupon fixtures: look-alike members (same openids) and templates in both tenants."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import actions
from profiles.models import Member
from tenants.context import tenant_context

OPENIDS = ["o-alice", "o-bob", "o-carol"]


def make_members(tenant, openids=OPENIDS, **fields):
    with tenant_context(tenant):
        return [Member.objects.create(openid=o, **fields) for o in openids]


def make_template(tenant, *, activate=True, **fields):
    fields.setdefault("name", "满100减20")
    fields.setdefault("kind", "cash_off")
    fields.setdefault("value", 2000)
    fields.setdefault("threshold_fen", 10000)
    fields.setdefault("valid_days", 30)
    return actions.create_coupon_template(tenant, activate=activate, **fields)


def in_threads(n, work):
    """``work(i)`` in n threads released at once: (results, exceptions); each thread's connection closed."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run(i):
        try:
            barrier.wait()
            results.append(work(i))
        except Exception as exc:  # collected and asserted on by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@pytest.fixture
def members_a(tenant_a):
    return make_members(tenant_a)


@pytest.fixture
def members_b(tenant_b):
    return make_members(tenant_b)


@pytest.fixture
def template_factory():
    return make_template


@pytest.fixture
def an_hour_ago():
    return timezone.now() - timedelta(hours=1)
