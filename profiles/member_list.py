"""The member list behind the console: search, filters, sorting and keyset pagination.

Built to stay fast at a million members per tenant: a page is a seek on (sort key, id) from the
last row of the previous page, never an OFFSET, and the list never counts the whole filtered
table (``estimate_count`` asks the planner instead). Tie-breaking on id runs against the sort
direction so that one index ``(tenant, -key, id)`` serves both directions, forwards or backwards.
Members never seen (``last_seen_at`` NULL) come after all seen ones in either direction.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Exists, F, Lookup, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from profiles.models import Member, MemberTag
from tenants.context import require_tenant, tenant_context
from tenants.models import Tenant

SHANGHAI = ZoneInfo("Asia/Shanghai")
PAGE_SIZE = 50
EXACT_COUNT_LIMIT = 1000

_OPENID = re.compile(r"[A-Za-z0-9_-]{20,64}")
_PHONE = re.compile(r"(?:\+?86)?(1[0-9]{10})")


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool
    nullable: bool = False


SORTS: dict[str, Sort] = {
    "-last_seen": Sort("last_seen_at", True, nullable=True),
    "last_seen": Sort("last_seen_at", False, nullable=True),
    "-first_seen": Sort("first_seen_at", True),
    "first_seen": Sort("first_seen_at", False),
    "-points": Sort("points", True),
    "points": Sort("points", False),
}
DEFAULT_SORT = "-last_seen"

SEARCH_MODES = ("auto", "nickname", "nickname_contains", "openid", "phone")


@dataclass(frozen=True)
class MemberFilters:
    q: str = ""
    search: str = "auto"
    tier: str = ""
    tag_id: int | None = None
    seen_within_days: int | None = None
    seen_before: datetime.date | None = None
    marketing: bool | None = None
    profiling: bool | None = None
    sort: str = DEFAULT_SORT


def phone_digest(number: str) -> str:
    """The keyed digest for ``Member.phone_digest``: the 11-digit mainland number, +86 and spaces dropped.

    Whatever writes a member's phone must store this digest, or exact phone search finds nobody.
    """
    digits = re.sub(r"[^0-9]", "", number)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return salted_hmac("jingzhun.member.phone-digest", digits, algorithm="sha256").hexdigest()


def _search(q: str, mode: str) -> Q | None:
    q = q.strip()
    if not q:
        return None
    if mode == "auto":
        if re.fullmatch(r"[0-9]{4}", q):
            mode = "phone"
        elif _PHONE.fullmatch(q.replace(" ", "").replace("-", "")):
            mode = "phone"
        elif _OPENID.fullmatch(q):
            mode = "openid"
        else:
            mode = "nickname"
    if mode == "phone":
        digits = q.replace(" ", "").replace("-", "")
        if re.fullmatch(r"[0-9]{4}", digits):
            # phone_last4 is right(phone_masked, 4) stored: under row-level security PostgreSQL uses
            # no index for a condition calling right() or LIKE (not leakproof), but a plain = on a
            # column is an index condition on (tenant_id, phone_last4).
            return Q(phone_last4=digits)
        full = _PHONE.fullmatch(digits)
        return Q(phone_digest=phone_digest(full.group(1))) if full else Q(pk__in=[])
    if mode == "openid":
        return Q(openid=q)
    # nickname_key is upper(nickname) stored; the searched text is folded by the same upper() of the
    # database, so both modes match exactly what upper(nickname) LIKE upper(q) matched.
    key = _database_upper(q)
    if mode == "nickname_contains":
        # Still a scan: no leakproof operator finds a substring, so no index can serve it under
        # row-level security. The stored key at least spares upper() on every row read.
        return Q(nickname_key__contains=key)
    # A prefix as a byte-wise range, not LIKE: under row-level security only leakproof comparisons
    # become index conditions on (tenant_id, nickname_key text_pattern_ops).
    bound = prefix_bound(key)
    starts = Q(_BytewiseGreaterEqual(F("nickname_key"), key))
    return starts if bound is None else starts & Q(_BytewiseLess(F("nickname_key"), bound))


def _database_upper(text: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT upper(%s)", [text])
        return cursor.fetchone()[0]


def prefix_bound(prefix: str) -> str | None:
    """The least string after every string that starts with ``prefix``, by code point (UTF-8 bytes).

    ``prefix <= s < prefix_bound(prefix)`` holds exactly when ``s`` starts with ``prefix``; None when
    no string comes after them all (the prefix is only U+10FFFF characters).
    """
    chars = list(prefix)
    while chars:
        following = ord(chars.pop()) + 1
        if 0xD800 <= following <= 0xDFFF:
            following = 0xE000  # surrogates are not characters: no stored text holds them
        if following <= 0x10FFFF:
            return "".join(chars) + chr(following)
    return None


class _BytewiseComparison(Lookup):
    """``lhs <op> rhs`` comparing text byte by byte (code point order) whatever the collation."""

    postgresql_operator = ""
    operator = ""

    def as_sql(self, compiler, connection, operator=None):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} {operator or self.operator} {rhs}", (*lhs_params, *rhs_params)

    def as_postgresql(self, compiler, connection):
        # text_pattern_ops' operators: memcmp order, leakproof, served by a text_pattern_ops index.
        return self.as_sql(compiler, connection, operator=self.postgresql_operator)


class _BytewiseGreaterEqual(_BytewiseComparison):
    lookup_name = "bytewise_gte"
    operator = ">="  # SQLite compares text with BINARY, memcmp order, unless told otherwise
    postgresql_operator = "~>=~"


class _BytewiseLess(_BytewiseComparison):
    lookup_name = "bytewise_lt"
    operator = "<"
    postgresql_operator = "~<~"


def filtered_members(filters: MemberFilters) -> QuerySet[Member]:
    """The tenant's members (erased ones excluded) matching ``filters``, unordered."""
    require_tenant()
    members = Member.objects.filter(erased_at__isnull=True)
    search = _search(filters.q, filters.search)
    if search is not None:
        members = members.filter(search)
    if filters.tier:
        members = members.filter(tier=filters.tier)
    if filters.tag_id is not None:
        members = members.filter(Exists(MemberTag.objects.filter(member_id=OuterRef("pk"), tag_id=filters.tag_id)))
    if filters.seen_within_days is not None:
        members = members.filter(last_seen_at__gte=timezone.now() - datetime.timedelta(days=filters.seen_within_days))
    if filters.seen_before is not None:
        start = datetime.datetime.combine(filters.seen_before, datetime.time.min, tzinfo=SHANGHAI)
        members = members.filter(last_seen_at__lt=start)
    if filters.marketing is not None:
        members = members.filter(consent_marketing=filters.marketing)
    if filters.profiling is not None:
        members = members.filter(consent_profiling=filters.profiling)
    return members


# --- cursors ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """A position in the order: section (0 = has a sort value, 1 = NULL), the value, the id."""

    section: int
    value: object
    id: int

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime.datetime) else self.value
        raw = json.dumps([self.section, value, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class BadCursor(ValueError):
    pass


def decode_cursor(token: str, sort: Sort) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        section, value, pk = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadCursor(token) from exc
    if section not in (0, 1) or not isinstance(pk, int) or isinstance(pk, bool):
        raise BadCursor(token)
    if section == 1:
        if not sort.nullable:
            raise BadCursor(token)
        return Cursor(1, None, pk)
    if sort.field == "points":
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadCursor(token)
        return Cursor(0, value, pk)
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise BadCursor(token) from exc
    if parsed.tzinfo is None:
        raise BadCursor(token)
    return Cursor(0, parsed, pk)


def _cursor_of(member: Member, sort: Sort) -> Cursor:
    value = getattr(member, sort.field)
    return Cursor(1, None, member.pk) if value is None else Cursor(0, value, member.pk)


# --- pages ------------------------------------------------------------------------------------

@dataclass
class Page:
    members: list[Member]
    next_cursor: str | None
    prev_cursor: str | None


def _section_query(members: QuerySet[Member], sort: Sort, section: int, cursor: Cursor | None,
                   backwards: bool) -> QuerySet[Member]:
    """One section of the order, seeked past ``cursor`` (if it lies in this section), in scan order."""
    key_desc = sort.descending != backwards
    # The id runs against the key so that one (key DESC, id ASC) index serves every direction.
    id_desc = not sort.descending
    if backwards:
        id_desc = not id_desc
    if section == 1:
        part = members.filter(**{f"{sort.field}__isnull": True})
        if cursor is not None:
            part = part.filter(pk__lt=cursor.id) if id_desc else part.filter(pk__gt=cursor.id)
        return part.order_by("-pk" if id_desc else "pk")
    part = members.filter(**{f"{sort.field}__isnull": False}) if sort.nullable else members
    if cursor is not None:
        past, beyond = ("lt", "lte") if key_desc else ("gt", "gte")
        id_past = "lt" if id_desc else "gt"
        # The redundant bound lets PostgreSQL start the index scan at the cursor instead of filtering.
        part = part.filter(**{f"{sort.field}__{beyond}": cursor.value}).filter(
            Q(**{f"{sort.field}__{past}": cursor.value})
            | Q(**{sort.field: cursor.value, f"pk__{id_past}": cursor.id})
        )
    key = sort.field
    return part.order_by(f"-{key}" if key_desc else key, "-pk" if id_desc else "pk")


def _scan(members: QuerySet[Member], sort: Sort, cursor: Cursor | None, limit: int,
          backwards: bool) -> list[Member]:
    sections = [0, 1] if sort.nullable else [0]
    if backwards:
        sections.reverse()
    rows: list[Member] = []
    for section in sections:
        if cursor is not None:
            # Sections before the cursor's (in scan order) are already behind us.
            if backwards and section > cursor.section or not backwards and section < cursor.section:
                continue
        seek = cursor if cursor is not None and cursor.section == section else None
        rows += list(_section_query(members, sort, section, seek, backwards)[: limit - len(rows)])
        if len(rows) >= limit:
            break
    return rows


def member_page(filters: MemberFilters, *, after: str = "", before: str = "", size: int = PAGE_SIZE) -> Page:
    """One page of the filtered list. ``after``/``before`` are cursors from a previous page."""
    sort = SORTS.get(filters.sort, SORTS[DEFAULT_SORT])
    size = max(1, size)
    members = filtered_members(filters)
    if before:
        rows = _scan(members, sort, decode_cursor(before, sort), size + 1, backwards=True)
        has_prev = len(rows) > size
        rows = rows[:size][::-1]
        next_cursor = _cursor_of(rows[-1], sort).encode() if rows else None
        prev_cursor = _cursor_of(rows[0], sort).encode() if rows and has_prev else None
        return Page(rows, next_cursor, prev_cursor)
    cursor = decode_cursor(after, sort) if after else None
    rows = _scan(members, sort, cursor, size + 1, backwards=False)
    has_next = len(rows) > size
    rows = rows[:size]
    next_cursor = _cursor_of(rows[-1], sort).encode() if rows and has_next else None
    prev_cursor = _cursor_of(rows[0], sort).encode() if rows and cursor is not None else None
    return Page(rows, next_cursor, prev_cursor)


def iter_members(tenant: Tenant, filters: MemberFilters, *, chunk: int = 2000,
                 with_tags: bool = False) -> Iterator[list[Member]]:
    """The whole filtered list in chunks, for streaming.

    Each chunk enters the tenant context (one short transaction) and leaves it before yielding, so
    neither the context nor a transaction stays open while the consumer is slow.
    """
    after = ""
    while True:
        with tenant_context(tenant):
            page = member_page(filters, after=after, size=chunk)
            if with_tags:
                attach_tag_names(page.members)
        if page.members:
            yield page.members
        if page.next_cursor is None:
            return
        after = page.next_cursor


def attach_tag_names(members: list[Member]) -> None:
    """Sets ``member.tag_names`` (sorted) with one query for the whole list."""
    names: dict[int, list[str]] = {m.pk: [] for m in members}
    rows = MemberTag.objects.filter(member_id__in=list(names)).values_list("member_id", "tag__name")
    for member_id, name in rows:
        names[member_id].append(name)
    for member in members:
        member.tag_names = sorted(names[member.pk])


# --- counting -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CountEstimate:
    value: int
    exact: bool


def estimate_count(filters: MemberFilters) -> CountEstimate:
    """How many match, without counting a million rows: the planner's estimate on PostgreSQL."""
    members = filtered_members(filters).order_by()
    if connection.vendor == "postgresql":
        plan = json.loads(members.values("pk").explain(format="json"))
        rows = int(plan[0]["Plan"]["Plan Rows"])
        if rows > EXACT_COUNT_LIMIT:
            return CountEstimate(rows, exact=False)
    found = members.values("pk")[: EXACT_COUNT_LIMIT + 1].count()
    if found > EXACT_COUNT_LIMIT:
        return CountEstimate(EXACT_COUNT_LIMIT, exact=False)
    return CountEstimate(found, exact=True)
