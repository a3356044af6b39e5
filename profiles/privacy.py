"""What is held about a member, for export and erasure (PIPL), gathered through one registry.

Every model with a foreign key to ``Member`` registers how to export and how to erase its rows for
one member; apps register in their ``AppConfig.ready()``::

    register_member_data(Order, export=orders_of_member, erase=anonymise_orders, section="orders")

``export(member)`` returns JSON-ready data; ``erase(member)`` deletes or anonymises (an order may
have to be kept for accounting, with nothing left that points back at the person). Both run inside
the member's tenant context and inside the erasing transaction. A test walks ``apps.get_models()``
and fails on a model linked to ``Member`` that is not registered here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models

from profiles.models import ConsentEvent, Event, Member, MemberTag, Tag

Exporter = Callable[[Member], Any]
Eraser = Callable[[Member], None]


@dataclass(frozen=True)
class MemberData:
    model: type[models.Model]
    section: str
    export: Exporter
    erase: Eraser


_registry: dict[type[models.Model], MemberData] = {}


def register_member_data(model: type[models.Model], *, export: Exporter, erase: Eraser,
                         section: str | None = None) -> None:
    section = section or model._meta.label_lower
    for entry in _registry.values():
        if entry.section == section and entry.model is not model:
            raise ValueError(f"export section {section!r} is taken by {entry.model._meta.label}")
    _registry[model] = MemberData(model=model, section=section, export=export, erase=erase)


def registered_models() -> set[type[models.Model]]:
    return set(_registry)


def member_linked_models() -> list[type[models.Model]]:
    """Every installed model (auto-created M2M tables included) with a foreign key to Member."""
    from django.apps import apps

    linked = []
    for model in apps.get_models(include_auto_created=True):
        for field in model._meta.get_fields():
            if field.concrete and (field.many_to_one or field.one_to_one) and field.related_model is Member:
                linked.append(model)
                break
    return linked


def export_sections(member: Member) -> dict[str, Any]:
    return {entry.section: entry.export(member) for entry in sorted(_registry.values(), key=lambda e: e.section)}


def erase_sections(member: Member) -> None:
    for entry in _registry.values():
        entry.erase(member)


# --- what profiles itself holds ------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _export_tags(member: Member) -> list[dict[str, Any]]:
    names = dict(Tag.objects.values_list("id", "name"))
    return [
        {"tag": names.get(tag_id, ""), "since": _iso(created_at)}
        for tag_id, created_at in MemberTag.objects.filter(member=member).order_by("created_at", "id")
        .values_list("tag_id", "created_at")
    ]


def _export_consent(member: Member) -> list[dict[str, Any]]:
    return [
        {"kind": kind, "granted": granted, "source": source, "at": _iso(at)}
        for kind, granted, source, at in ConsentEvent.objects.filter(member=member)
        .order_by("created_at", "id").values_list("kind", "granted", "source", "created_at")
    ]


def _export_events(member: Member) -> list[dict[str, Any]]:
    from catalog.models import Item

    rows = list(
        Event.objects.filter(member=member).order_by("ts", "id")
        .values_list("event_id", "kind", "item_id", "amount_fen", "ts", "props", "received_at")
    )
    item_ids = {row[2] for row in rows if row[2] is not None}
    skus = dict(Item.objects.filter(pk__in=item_ids).values_list("id", "sku")) if item_ids else {}
    return [
        {"event_id": event_id, "kind": kind, "sku": skus.get(item_id) if item_id else None,
         "amount_fen": amount_fen, "ts": _iso(ts), "props": props, "received_at": _iso(received_at)}
        for event_id, kind, item_id, amount_fen, ts, props, received_at in rows
    ]


def _delete_rows(model: type[models.Model]) -> Eraser:
    def erase(member: Member) -> None:
        model.objects.filter(member=member).delete()

    return erase


register_member_data(MemberTag, export=_export_tags, erase=_delete_rows(MemberTag), section="tags")
register_member_data(ConsentEvent, export=_export_consent, erase=_delete_rows(ConsentEvent),
                     section="consent_history")
register_member_data(Event, export=_export_events, erase=_delete_rows(Event), section="events")
