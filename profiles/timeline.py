"""A member's timeline on the console: one registry of sources, merged newest first.

Each app that holds something dated about a member (orders, coupons, pushes…) registers a source
in its ``AppConfig.ready()``::

    from profiles.timeline import TimelineEntry, register_source

    def orders_of(member, limit):
        return [TimelineEntry(at=o.paid_at, kind="order", title=..., amount_fen=o.payable_fen)
                for o in Order.objects.filter(member=member).order_by("-created_at")[:limit]]

    register_source("orders", orders_of)

A source returns at most ``limit`` entries, newest first, and runs inside the member's tenant
context; it must read through its own indexed query, as the page asks every source on each view.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils.translation import gettext as _

from profiles.models import ConsentEvent, Event, Member

DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime.datetime
    kind: str
    title: str
    detail: str = ""
    amount_fen: int | None = None
    source: str = ""


Source = Callable[[Member, int], Iterable[TimelineEntry]]

_sources: dict[str, Source] = {}


def register_source(name: str, source: Source) -> None:
    """Add (or, for the same name, replace) a source; names keep registration idempotent on reload."""
    _sources[name] = source


def unregister_source(name: str) -> None:
    _sources.pop(name, None)


def source_names() -> list[str]:
    return list(_sources)


def timeline(member: Member, limit: int = DEFAULT_LIMIT) -> list[TimelineEntry]:
    """The latest ``limit`` entries of every source, newest first."""
    streams = []
    for name, source in _sources.items():
        entries = sorted(itertools.islice(source(member, limit), limit), key=lambda e: e.at, reverse=True)
        streams.append([e if e.source else _with_source(e, name) for e in entries])
    return list(itertools.islice(heapq.merge(*streams, key=lambda e: e.at, reverse=True), limit))


def _with_source(entry: TimelineEntry, name: str) -> TimelineEntry:
    return TimelineEntry(entry.at, entry.kind, entry.title, entry.detail, entry.amount_fen, name)


# --- the sources profiles holds itself ----------------------------------------------------------

def behaviour_events(member: Member, limit: int) -> list[TimelineEntry]:
    rows = (Event.objects.filter(member=member).select_related("item").order_by("-ts", "-pk")[:limit])
    entries = []
    for event in rows:
        item = event.item
        detail = f"{item.sku} {item.name}" if item is not None else ""
        entries.append(TimelineEntry(at=event.ts, kind=f"event.{event.kind}",
                                     title=str(Event.Kind(event.kind).label) if event.kind in Event.Kind.values
                                     else event.kind, detail=detail, amount_fen=event.amount_fen))
    return entries


def consent_changes(member: Member, limit: int) -> list[TimelineEntry]:
    rows = ConsentEvent.objects.filter(member=member).order_by("-created_at", "-pk")[:limit]
    return [
        TimelineEntry(at=c.created_at, kind="consent",
                      title=(_("同意：%(kind)s") if c.granted else _("撤回：%(kind)s")) % {"kind": c.get_kind_display()},
                      detail=c.source)
        for c in rows
    ]


register_source("events", behaviour_events)
register_source("consent", consent_changes)
