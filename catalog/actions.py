"""State changes of the catalogue: categories and items (console, commands and admin call these)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from catalog.models import Category, Item
from tenants.actions import audit
from tenants.context import tenant_context
from tenants.models import Tenant


def _clean_name(name: str, limit: int, label: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError(_("请填写%(label)s。") % {"label": label}, code="required")
    if len(name) > limit:
        raise ValidationError(_("%(label)s不能超过 %(n)d 个字符。") % {"label": label, "n": limit}, code="too_long")
    return name


def _category_name(name: str) -> str:
    return _clean_name(name, Category._meta.get_field("name").max_length, _("分类名称"))


def create_category(tenant: Tenant, name: str, *, actor=None) -> Category:
    name = _category_name(name)
    with tenant_context(tenant), transaction.atomic():
        if Category.objects.filter(name=name).exists():
            raise ValidationError(_("分类“%(name)s”已存在。") % {"name": name}, code="category_exists")
        category = Category.objects.create(name=name)
        audit(tenant, "catalog.category_created", actor=actor, target=name)
    return category


def rename_category(tenant: Tenant, category_id: int, name: str, *, actor=None) -> Category:
    name = _category_name(name)
    with tenant_context(tenant), transaction.atomic():
        category = Category.objects.select_for_update().get(pk=category_id)
        if Category.objects.filter(name=name).exclude(pk=category.pk).exists():
            raise ValidationError(_("分类“%(name)s”已存在。") % {"name": name}, code="category_exists")
        old = category.name
        category.name = name
        category.save(update_fields=["name"])
        audit(tenant, "catalog.category_renamed", actor=actor, target=name, old=old)
    return category


def _item_fields(sku: str, name: str, price_fen: int) -> tuple[str, str, int]:
    sku = _clean_name(sku, Item._meta.get_field("sku").max_length, "SKU")
    name = _clean_name(name, Item._meta.get_field("name").max_length, _("商品名称"))
    if isinstance(price_fen, bool) or not isinstance(price_fen, int) or price_fen < 0:
        raise ValidationError(_("价格应为不小于 0 的整数（分）。"), code="bad_price")
    return sku, name, price_fen


def create_item(tenant: Tenant, *, sku: str, name: str, category_id: int, price_fen: int, active: bool = True,
                actor=None) -> Item:
    sku, name, price_fen = _item_fields(sku, name, price_fen)
    with tenant_context(tenant), transaction.atomic():
        category = Category.objects.get(pk=category_id)
        if Item.objects.filter(sku=sku).exists():
            raise ValidationError(_("SKU %(sku)s 已存在。") % {"sku": sku}, code="sku_exists")
        item = Item.objects.create(sku=sku, name=name, category=category, price_fen=price_fen, active=active)
        audit(tenant, "catalog.item_created", actor=actor, target=sku, price_fen=price_fen)
    return item


def update_item(tenant: Tenant, item_id: int, *, name: str, category_id: int, price_fen: int, active: bool,
                actor=None) -> Item:
    """Everything but the sku, which orders and events refer to."""
    with tenant_context(tenant), transaction.atomic():
        item = Item.objects.select_for_update().get(pk=item_id)
        _, name, price_fen = _item_fields(item.sku, name, price_fen)
        category = Category.objects.get(pk=category_id)
        changed = {k: v for k, v in (("name", name), ("category_id", category.pk), ("price_fen", price_fen),
                                     ("active", active)) if getattr(item, k) != v}
        for key, value in changed.items():
            setattr(item, key, value)
        if changed:
            item.save(update_fields=[*changed, "updated_at"])
            audit(tenant, "catalog.item_updated", actor=actor, target=item.sku, fields=sorted(changed))
    return item
