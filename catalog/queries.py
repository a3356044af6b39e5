"""Named reads of the catalogue. ``get_*`` raise the same DoesNotExist for missing and another tenant's."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from catalog.models import Category, Item
from tenants.context import require_tenant


def get_item(item_id: int) -> Item:
    require_tenant()
    return Item.objects.select_related("category").get(pk=item_id)


def get_category(category_id: int) -> Category:
    require_tenant()
    return Category.objects.get(pk=category_id)


def categories_with_counts() -> QuerySet[Category]:
    return Category.objects.annotate(
        item_count=Count("items"), active_count=Count("items", filter=Q(items__active=True))
    ).order_by("name")


def search_items(*, q: str = "", category_id: int | None = None, active: bool | None = None) -> QuerySet[Item]:
    """The console list: sku prefix or name substring, in sku order so pages stay stable."""
    items = Item.objects.select_related("category")
    q = q.strip()
    if q:
        items = items.filter(Q(sku__startswith=q) | Q(name__icontains=q))
    if category_id is not None:
        items = items.filter(category_id=category_id)
    if active is not None:
        items = items.filter(active=active)
    return items.order_by("sku")


def active_items_page(*, category: str = "", after_sku: str = "", limit: int) -> list[Item]:
    """Active items in sku order after ``after_sku`` (keyset), at most ``limit``."""
    items = Item.objects.filter(active=True).select_related("category")
    if category:
        items = items.filter(category__name=category)
    if after_sku:
        items = items.filter(sku__gt=after_sku)
    return list(items.order_by("sku")[:limit])
