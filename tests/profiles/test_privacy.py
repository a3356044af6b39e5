"""Export and erasure (PIPL): every member-linked table is covered, and erasure leaves nothing personal."""

from __future__ import annotations

import pytest
from django.db import connection

from catalog.models import Category, Item
from profiles import privacy
from profiles.models import ConsentEvent, Event, Member, MemberTag, Tag
from tenants.context import tenant_context
from tests.profiles.conftest import auth
from wechat.sandbox.mp_views import openid_for

pytestmark = pytest.mark.django_db

APP_A = "wxa0000000000000a1"


def test_every_model_linked_to_member_is_registered():
    linked = set(privacy.member_linked_models())
    assert {MemberTag, ConsentEvent, Event} <= linked
    missing = sorted(m._meta.label for m in linked - privacy.registered_models())
    assert missing == [], f"register these with profiles.privacy.register_member_data: {missing}"


def test_registering_one_section_name_twice_is_refused():
    with pytest.raises(ValueError, match="taken"):
        privacy.register_member_data(Tag, export=lambda m: [], erase=lambda m: None, section="events")
    assert Tag not in privacy.registered_models()


def fill(member, sku="SKU-1"):
    """Tags, consent history and an event for the member, in its tenant."""
    from profiles import actions

    with tenant_context(member.tenant):
        item = Item.objects.create(sku=sku, name="Latte", category=Category.objects.create(name="Coffee"),
                                   price_fen=2800)
        tag = Tag.objects.create(name="VIP")
        MemberTag.objects.create(member=member, tag=tag)
        Event.objects.create(event_id="ev-1", member=member, kind="view", item=item,
                             ts="2026-11-01T00:00:00+00:00", props={"page": "home"})
    actions.set_consent(member.tenant, member=member, marketing=True)


def test_export_holds_everything_about_the_member_and_nothing_else(api, member_a, member_b):
    fill(member_a)
    fill(member_b)
    status, body, _ = api.call("GET", "me/export", **auth(member_a))
    assert status == 200
    sections = {entry.section for entry in privacy._registry.values()}
    assert sections <= set(body)
    assert body["member"]["id"] == member_a.pk
    assert body["member"]["phone"] == "13800000001"
    assert body["member"]["unionid"] == "oU_union_alice"
    assert body["tags"] == [{"tag": "VIP", "since": body["tags"][0]["since"]}]
    assert [(c["kind"], c["granted"]) for c in body["consent_history"]] == [("marketing", True)]
    assert len(body["events"]) == 1
    assert body["events"][0] | {"received_at": None} == {
        "event_id": "ev-1", "kind": "view", "sku": "SKU-1", "amount_fen": None,
        "ts": "2026-11-01T00:00:00+00:00", "props": {"page": "home"}, "received_at": None,
    }


def _member_row(member) -> dict:
    with tenant_context(member.tenant), connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Member._meta.db_table} WHERE id = %s", [member.pk])
        names = [c[0] for c in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def _count(member, model) -> int:
    with tenant_context(member.tenant), connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {model._meta.db_table} WHERE member_id = %s", [member.pk])
        return cursor.fetchone()[0]


def test_erase_leaves_no_personal_data(api, member_a, member_b):
    fill(member_a)
    fill(member_b)
    before = _member_row(member_a)
    status, _, _ = api.call("DELETE", "me", **auth(member_a))
    assert status == 204

    row = _member_row(member_a)
    personal = ("openid", "unionid", "nickname", "avatar_url", "city", "phone", "phone_masked", "phone_digest")
    assert all(row[name] != before[name] or not before[name] for name in personal)
    assert row["openid"].startswith("erased:") and len(row["openid"]) == len("erased:") + 32
    assert {name: row[name] for name in personal if name != "openid"} == dict.fromkeys(
        [n for n in personal if n != "openid"], "")
    assert (row["birthday"], row["gender"], row["points"], row["tier"]) == (None, 0, 0, "")
    assert (row["consent_marketing"], row["consent_profiling"]) == (False, False)
    assert row["erased_at"] is not None
    flat = " ".join(str(v) for v in row.values())
    for secret in ("13800000001", "Alice", "上海", "oU_union_alice", member_a.openid):
        assert secret not in flat
    assert [_count(member_a, m) for m in (MemberTag, ConsentEvent, Event)] == [0, 0, 0]

    # The look-alike in the other tenant is untouched.
    assert _member_row(member_b)["phone_masked"] == "138****0001"
    assert [_count(member_b, m) for m in (MemberTag, ConsentEvent, Event)] == [1, 1, 1]

    # The erased member's token stops working at once.
    status, body, _ = api.call("GET", "me", **auth(member_a))
    assert (status, body["error"]["code"]) == (401, "invalid_token")


def test_erased_user_signing_in_again_is_a_new_empty_member(api, tenant_a, wechat_sandbox):
    _, first, _ = api.call("POST", "auth/wx-login", {"code": "alice:1"}, HTTP_X_WX_APPID=APP_A)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {first['token']}"}
    api.call("PATCH", "me/consent", {"marketing": True}, **bearer)
    assert api.call("DELETE", "me", **bearer)[0] == 204
    assert api.call("POST", "auth/refresh", {"refresh_token": first["refresh_token"]})[0] == 401

    _, second, _ = api.call("POST", "auth/wx-login", {"code": "alice:2"}, HTTP_X_WX_APPID=APP_A)
    assert second["member"]["id"] != first["member"]["id"]
    assert second["member"]["openid"] == openid_for(APP_A, "alice")
    assert second["member"]["consent"]["marketing"]["granted"] is False
    with tenant_context(tenant_a):
        assert Member.objects.filter(openid=openid_for(APP_A, "alice")).count() == 1
        assert not ConsentEvent.objects.exists()
