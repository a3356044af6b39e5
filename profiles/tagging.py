"""Merchant-defined member tags: create, rename, delete, tag and untag members, tag a whole filtered list."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from profiles.member_list import MemberFilters, filtered_members
from profiles.models import MemberTag, Tag
from profiles.queries import get_member
from tenants.actions import audit
from tenants.context import require_tenant, tenant_context
from tenants.models import Tenant


class TagNotFound(Exception):
    """No such tag in the tenant in context: missing and another tenant's alike."""


def get_tag(tag_id: int) -> Tag:
    require_tenant()
    tag = Tag.objects.filter(pk=tag_id).first()
    if tag is None:
        raise TagNotFound(tag_id)
    return tag


def tags_with_counts() -> QuerySet[Tag]:
    require_tenant()
    return Tag.objects.annotate(member_count=Count("members")).order_by("name")


def _clean(name: str) -> str:
    name = " ".join((name or "").split())
    limit = Tag._meta.get_field("name").max_length
    if not name:
        raise ValidationError(_("请填写标签名称。"), code="required")
    if len(name) > limit:
        raise ValidationError(_("标签名称不能超过 %(n)d 个字符。") % {"n": limit}, code="too_long")
    return name


def _refuse_duplicate(name: str, exclude_pk: int | None = None) -> None:
    taken = Tag.objects.filter(name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError(_("标签“%(name)s”已存在。") % {"name": name}, code="tag_exists")


def create_tag(tenant: Tenant, name: str, *, actor=None) -> Tag:
    name = _clean(name)
    with tenant_context(tenant), transaction.atomic():
        _refuse_duplicate(name)
        tag = Tag.objects.create(name=name)
        audit(tenant, "tag.created", actor=actor, target=name)
    return tag


def rename_tag(tenant: Tenant, tag_id: int, name: str, *, actor=None) -> Tag:
    name = _clean(name)
    with tenant_context(tenant), transaction.atomic():
        tag = get_tag(tag_id)
        _refuse_duplicate(name, exclude_pk=tag.pk)
        old, tag.name = tag.name, name
        tag.save(update_fields=["name"])
        audit(tenant, "tag.renamed", actor=actor, target=name, old=old)
    return tag


def delete_tag(tenant: Tenant, tag_id: int, *, actor=None) -> int:
    """Delete the tag and its links; returns how many members carried it."""
    with tenant_context(tenant), transaction.atomic():
        tag = get_tag(tag_id)
        carried, _ = MemberTag.objects.filter(tag=tag).delete()
        tag.delete()
        audit(tenant, "tag.deleted", actor=actor, target=tag.name, members=carried)
    return carried


def tag_member(tenant: Tenant, member_id: int, tag_id: int, *, actor=None) -> bool:
    """Returns False when the member already had the tag (nothing changes then)."""
    with tenant_context(tenant), transaction.atomic():
        member, tag = get_member(member_id), get_tag(tag_id)
        _, created = MemberTag.objects.get_or_create(member=member, tag=tag)
        if created:
            audit(tenant, "member.tagged", actor=actor, target=str(member.pk), tag=tag.name)
    return created


def untag_member(tenant: Tenant, member_id: int, tag_id: int, *, actor=None) -> bool:
    with tenant_context(tenant), transaction.atomic():
        member, tag = get_member(member_id), get_tag(tag_id)
        removed, _ = MemberTag.objects.filter(member=member, tag=tag).delete()
        if removed:
            audit(tenant, "member.untagged", actor=actor, target=str(member.pk), tag=tag.name)
    return bool(removed)


def bulk_tag(tenant: Tenant, filters: MemberFilters, tag_id: int, *, actor=None) -> int:
    """Tag every member of the filtered list in one INSERT … SELECT; returns how many gained the tag.

    One statement rather than a loop: a million members take seconds, and members who already
    carry the tag are skipped by the unique constraint.
    """
    with tenant_context(tenant), transaction.atomic():
        tag = get_tag(tag_id)
        members = filtered_members(filters).order_by().values(member_pk=F("pk"))
        select_sql, select_params = members.query.sql_with_params()
        table = connection.ops.quote_name(MemberTag._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (tenant_id, member_id, tag_id, created_at) "  # noqa: S608 - ORM-compiled
                f"SELECT %s, m.member_pk, %s, %s FROM ({select_sql}) AS m "
                # WHERE true: without it SQLite would read ON CONFLICT as a join constraint.
                "WHERE true ON CONFLICT (tenant_id, member_id, tag_id) DO NOTHING",
                [tenant.pk, tag.pk, connection.ops.adapt_datetimefield_value(timezone.now()), *select_params],
            )
            added = cursor.rowcount
        audit(tenant, "members.bulk_tagged", actor=actor, target=tag.name, added=added,
              filters=describe_filters(filters))
    return added


def describe_filters(filters: MemberFilters) -> dict:
    """The filters as audit details (JSON-safe, phone numbers left out)."""
    described = {k: v for k, v in vars(filters).items() if v not in (None, "")}
    if "seen_before" in described:
        described["seen_before"] = described["seen_before"].isoformat()
    if described.get("q") and any(ch.isdigit() for ch in described["q"]):
        described["q"] = "•••"
    return described

