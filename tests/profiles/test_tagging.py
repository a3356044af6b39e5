"""Tag actions: names unique per tenant, idempotent tagging, bulk tagging of a filtered list, isolation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from profiles import tagging
from profiles.member_list import MemberFilters
from profiles.models import MemberTag, Tag
from profiles.queries import MemberNotFound
from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.profiles.test_console_members import make_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(tenant_a, tenant_b):
    return make_people(tenant_a), make_people(tenant_b)


@pytest.fixture
def console_a(owner_a):
    client = Client()
    client.force_login(owner_a)
    return client


def tagged(tenant, tag) -> set[int]:
    with tenant_context(tenant):
        return set(MemberTag.objects.filter(tag=tag).values_list("member_id", flat=True))


def actions_of(tenant) -> list[str]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action__startswith="tag").order_by("pk").values_list("action", flat=True))


def test_create_rename_delete_with_names_unique_per_tenant(tenant_a, tenant_b, owner_a):
    vip = tagging.create_tag(tenant_a, "  VIP   客户 ", actor=owner_a)
    assert vip.name == "VIP 客户"
    tagging.create_tag(tenant_b, "VIP 客户")  # same name in another tenant is fine
    with pytest.raises(ValidationError) as exc:
        tagging.create_tag(tenant_a, "VIP 客户")
    assert exc.value.code == "tag_exists"
    for bad, code in (("", "required"), ("x" * 33, "too_long")):
        with pytest.raises(ValidationError) as exc:
            tagging.create_tag(tenant_a, bad)
        assert exc.value.code == code
    other = tagging.create_tag(tenant_a, "新客")
    with pytest.raises(ValidationError):
        tagging.rename_tag(tenant_a, other.pk, "VIP 客户")
    assert tagging.rename_tag(tenant_a, other.pk, "老客").name == "老客"
    assert tagging.delete_tag(tenant_a, other.pk) == 0
    with tenant_context(tenant_a):
        assert list(Tag.objects.values_list("name", flat=True)) == ["VIP 客户"]
    with tenant_context(tenant_b):
        assert list(Tag.objects.values_list("name", flat=True)) == ["VIP 客户"]
    assert actions_of(tenant_a) == ["tag.created", "tag.created", "tag.renamed", "tag.deleted"]


def test_another_tenants_tag_or_member_is_not_found(people, tenant_a, tenant_b):
    a, b = people
    with tenant_context(tenant_b):
        tag_b = Tag.objects.create(name="B")
    tag_a = tagging.create_tag(tenant_a, "A")
    with pytest.raises(tagging.TagNotFound):
        tagging.tag_member(tenant_a, a["bob"].pk, tag_b.pk)
    with pytest.raises(MemberNotFound):
        tagging.tag_member(tenant_a, b["bob"].pk, tag_a.pk)
    with pytest.raises(tagging.TagNotFound):
        tagging.rename_tag(tenant_a, tag_b.pk, "stolen")
    with pytest.raises(tagging.TagNotFound):
        tagging.delete_tag(tenant_a, tag_b.pk)
    with pytest.raises(tagging.TagNotFound):
        tagging.bulk_tag(tenant_a, MemberFilters(), tag_b.pk)
    with tenant_context(tenant_b):
        assert Tag.objects.get(pk=tag_b.pk).name == "B"
        assert not MemberTag.objects.exists()
    assert tagged(tenant_a, tag_a) == set()


def test_tag_and_untag_are_idempotent(people, tenant_a):
    a, _ = people
    vip = tagging.create_tag(tenant_a, "VIP")
    assert tagging.tag_member(tenant_a, a["bob"].pk, vip.pk) is True
    assert tagging.tag_member(tenant_a, a["bob"].pk, vip.pk) is False
    assert tagged(tenant_a, vip) == {a["bob"].pk}
    assert tagging.untag_member(tenant_a, a["bob"].pk, vip.pk) is True
    assert tagging.untag_member(tenant_a, a["bob"].pk, vip.pk) is False
    assert tagged(tenant_a, vip) == set()
    with tenant_context(tenant_a):
        assert list(AuditEvent.objects.filter(action__startswith="member.").order_by("pk").values_list("action", flat=True)) == [
            "member.tagged", "member.untagged"]


def test_bulk_tag_tags_exactly_the_filtered_members_of_the_tenant(people, tenant_a, tenant_b, owner_a):
    a, b = people
    gold = tagging.create_tag(tenant_a, "金卡")
    gold_b = tagging.create_tag(tenant_b, "金卡")
    tagging.tag_member(tenant_a, a["alice"].pk, gold.pk)  # already tagged: skipped, not an error
    added = tagging.bulk_tag(tenant_a, MemberFilters(tier="gold"), gold.pk, actor=owner_a)
    assert added == 2
    assert tagged(tenant_a, gold) == {a["alice"].pk, a["carol"].pk, a["erin"].pk}
    assert tagged(tenant_b, gold_b) == set()
    assert tagging.bulk_tag(tenant_a, MemberFilters(tier="gold"), gold.pk) == 0
    with tenant_context(tenant_a):
        audit = AuditEvent.objects.filter(action="members.bulk_tagged").order_by("pk").first()
    assert audit.target == "金卡" and audit.details["added"] == 2
    assert audit.details["filters"] == {"search": "auto", "tier": "gold", "sort": "-last_seen"}
    assert tagging.delete_tag(tenant_a, gold.pk) == 3


def test_bulk_tag_keeps_phone_numbers_out_of_the_audit(people, tenant_a):
    tag = tagging.create_tag(tenant_a, "查过电话")
    assert tagging.bulk_tag(tenant_a, MemberFilters(q="13900001234"), tag.pk) == 1
    with tenant_context(tenant_a):
        audit = AuditEvent.objects.get(action="members.bulk_tagged")
    assert audit.details["filters"]["q"] == "•••"


def test_bulk_tag_from_the_console_uses_the_lists_query(people, tenant_a, console_a):
    a, _ = people
    tag = tagging.create_tag(tenant_a, "营销")
    response = console_a.post("/console/shop-a/members/bulk-tag/",
                              {"query": "marketing=no&sort=-points", "tag_to_add": tag.pk})
    assert response.status_code == 302
    assert response["Location"] == "/console/shop-a/members/?marketing=no&sort=-points"
    assert tagged(tenant_a, tag) == {a["bob"].pk, a["erin"].pk, a["dave"].pk}


def test_tag_pages_create_rename_delete(people, tenant_a, tenant_b, console_a):
    assert console_a.post("/console/shop-a/members/tags/", {"name": "VIP"}).status_code == 302
    duplicate = console_a.post("/console/shop-a/members/tags/", {"name": "VIP"})
    assert duplicate.status_code == 200 and "标签“VIP”已存在。" in duplicate.content.decode()
    with tenant_context(tenant_a):
        vip = Tag.objects.get(name="VIP")
    with tenant_context(tenant_b):
        tag_b = Tag.objects.create(name="B")
    assert console_a.post(f"/console/shop-a/members/tags/{vip.pk}/rename/", {"name": "SVIP"}).status_code == 302
    assert console_a.post(f"/console/shop-a/members/tags/{tag_b.pk}/rename/", {"name": "x"}).status_code == 404
    assert console_a.post(f"/console/shop-a/members/tags/{tag_b.pk}/delete/").status_code == 404
    page = console_a.get("/console/shop-a/members/tags/")
    assert [(t.name, t.member_count) for t in page.context["tags"]] == [("SVIP", 0)]
    assert console_a.post(f"/console/shop-a/members/tags/{vip.pk}/delete/").status_code == 302
    with tenant_context(tenant_a):
        assert not Tag.objects.exists()
    with tenant_context(tenant_b):
        assert list(Tag.objects.values_list("name", flat=True)) == ["B"]


def test_analyst_cannot_change_tags(tenant_a, staff_factory):
    analyst = staff_factory(tenant_a, "analyst-a", "analyst").user
    client = Client()
    client.force_login(analyst)
    assert client.post("/console/shop-a/members/tags/", {"name": "VIP"}).status_code == 403
    with tenant_context(tenant_a):
        assert not Tag.objects.exists()
