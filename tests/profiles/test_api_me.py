"""GET /api/v1/me and PATCH /api/v1/me/consent."""

from __future__ import annotations

from unittest import mock

import pytest

from profiles.models import ConsentEvent, Member
from tenants.context import tenant_context
from tests.profiles.conftest import auth

pytestmark = pytest.mark.django_db


def consent_rows(member):
    with tenant_context(member.tenant):
        return list(ConsentEvent.objects.filter(member=member).order_by("id").values_list("kind", "granted"))


def test_me_shows_the_member(api, member_a, member_b):
    with tenant_context(member_a.tenant):
        Member.objects.filter(pk=member_a.pk).update(points=1234, tier="gold")
    status, body, _ = api.call("GET", "me", **auth(member_a))
    assert status == 200
    assert body == {
        "id": member_a.pk,
        "openid": member_a.openid,
        "nickname": "Alice",
        "avatar_url": "",
        "tier": "gold",
        "points": 1234,
        "consent": {"marketing": {"granted": False, "updated_at": None},
                    "profiling": {"granted": True, "updated_at": None}},
        "first_seen_at": mock.ANY,
        "last_seen_at": None,
        "profile": None,
    }
    assert isinstance(body["points"], int)
    assert api.call("GET", "me", **auth(member_b))[1]["points"] == 0


def test_consent_changes_are_history_and_only_changes_count(api, member_a, member_b):
    status, body, _ = api.call("PATCH", "me/consent", {"marketing": True}, **auth(member_a))
    assert status == 200
    assert body["consent"]["marketing"]["granted"] is True
    assert body["consent"]["marketing"]["updated_at"] is not None
    assert body["consent"]["profiling"] == {"granted": True, "updated_at": None}

    api.call("PATCH", "me/consent", {"marketing": True, "profiling": True}, **auth(member_a))  # no change
    api.call("PATCH", "me/consent", {"profiling": False}, **auth(member_a))
    api.call("PATCH", "me/consent", {"marketing": False, "profiling": True}, **auth(member_a))

    assert consent_rows(member_a) == [
        ("marketing", True), ("profiling", False), ("marketing", False), ("profiling", True),
    ]
    assert consent_rows(member_b) == []
    with tenant_context(member_a.tenant):
        fresh = Member.objects.get(pk=member_a.pk)
    assert (fresh.consent_marketing, fresh.consent_profiling) == (False, True)
    with tenant_context(member_b.tenant):
        other = Member.objects.get(pk=member_b.pk)
    assert (other.consent_marketing, other.consent_profiling) == (False, True)


@pytest.mark.parametrize("body", [{}, {"marketing": "yes"}, {"profiling": 1}, {"marketing": None}, []])
def test_bad_consent_bodies_change_nothing(api, member_a, body):
    status, answer, _ = api.call("PATCH", "me/consent", body, **auth(member_a))
    assert status == 400
    assert answer["error"]["code"] == "invalid"
    assert consent_rows(member_a) == []
