"""Catalogue import from CSV: ``sku,name,category,price_fen[,active]``, all or nothing.

The whole file is parsed and validated before the database is touched; one bad row means nothing
is written and every bad row is reported with its line number. A valid file is applied in one
transaction with set-based writes, so 100k rows take seconds. On PostgreSQL the rows go into a
temporary staging table by binary COPY (PostgreSQL refuses COPY FROM into a table with row-level
security; the staging table has none and lives only in this transaction), and the plan is a few
joins against it: one INSERT … SELECT for the new items, one UPDATE … FROM for the changed ones,
both checked by the tenant's RLS policy like any other write. Elsewhere (SQLite) the plan is made in
Python and written with bulk inserts and batched UPDATEs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from catalog.models import Category, Item
from tenants.actions import audit
from tenants.context import tenant_context
from tenants.models import Tenant

REQUIRED_COLUMNS = ("sku", "name", "category", "price_fen")
OPTIONAL_COLUMNS = ("active",)
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})
# PositiveBigIntegerField is a signed bigint in PostgreSQL.
MAX_PRICE_FEN = 2**63 - 1
PREVIEW_ROWS = 20
BATCH = 2000
_DIGITS = re.compile(r"[0-9]+")
# pg_advisory_xact_lock(namespace, tenant_id): one catalogue import per tenant at a time.
_LOCK_NAMESPACE = 7201

Progress = Callable[[Iterable], Iterable]


@dataclass(frozen=True)
class RowError:
    line: int
    message: str
    sku: str = ""

    def __str__(self) -> str:
        if not self.line:
            return self.message
        return _("第 %(line)d 行：%(message)s") % {"line": self.line, "message": self.message}


@dataclass(frozen=True)
class ParsedRow:
    line: int
    sku: str
    name: str
    category: str
    price_fen: int
    active: bool


@dataclass(frozen=True)
class PreviewRow:
    line: int
    sku: str
    name: str
    category: str
    price_fen: int
    active: bool
    status: str  # "new", "updated" or "unchanged"
    changed: tuple[str, ...] = ()


@dataclass
class ImportReport:
    total_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    new_categories: list[str] = field(default_factory=list)
    preview: list[PreviewRow] = field(default_factory=list)
    applied: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


# --- parsing: no database ---------------------------------------------------------------------

def _decode(data: bytes) -> tuple[str | None, RowError | None]:
    try:
        # utf-8-sig drops the BOM that Excel writes and accepts files without one.
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, RowError(line, _("文件不是 UTF-8 编码（请在 Excel 中另存为“CSV UTF-8”）。"))


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line of the record, its fields); blank lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next_line = 1
    for record in reader:
        start, next_line = next_line, reader.line_num + 1
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        yield start, record


def _header(line: int, record: list[str]) -> tuple[dict[str, int] | None, list[RowError]]:
    names = [c.strip().lower() for c in record]
    errors: list[RowError] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    unknown = [c for c in names if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({c for c in names if names.count(c) > 1})
    if missing:
        errors.append(RowError(line, _("缺少列：%(cols)s（需要 sku,name,category,price_fen，可选 active）")
                               % {"cols": ", ".join(missing)}))
    if unknown:
        errors.append(RowError(line, _("无法识别的列：%(cols)s") % {"cols": ", ".join(unknown)}))
    if repeated:
        errors.append(RowError(line, _("列重复：%(cols)s") % {"cols": ", ".join(repeated)}))
    if errors:
        return None, errors
    return {name: i for i, name in enumerate(names)}, []


def _check_length(errors: list[str], value: str, limit: int, label: str) -> None:
    if len(value) > limit:
        errors.append(_("%(label)s 超过 %(n)d 个字符") % {"label": label, "n": limit})


_SKU_MAX = Item._meta.get_field("sku").max_length
_NAME_MAX = Item._meta.get_field("name").max_length
_CATEGORY_MAX = Category._meta.get_field("name").max_length
_ACTIVE_WORDS = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False), "": True}


def _row(line: int, record: list[str], columns: dict[str, int]) -> tuple[ParsedRow | None, RowError | None]:
    if len(record) != len(columns):
        return None, RowError(line, _("列数不对：应为 %(want)d 列，实际 %(got)d 列")
                              % {"want": len(columns), "got": len(record)})
    sku = record[columns["sku"]].strip()
    name = record[columns["name"]].strip()
    category = record[columns["category"]].strip()
    price_raw = record[columns["price_fen"]].strip()
    active_raw = record[columns["active"]].strip().lower() if "active" in columns else ""
    # A well-formed row (nearly all of them) passes these few comparisons; only a row that fails
    # one is examined field by field so that every problem in it is reported.
    active = _ACTIVE_WORDS.get(active_raw)
    if (active is not None and 0 < len(sku) <= _SKU_MAX and 0 < len(name) <= _NAME_MAX
            and 0 < len(category) <= _CATEGORY_MAX and price_raw.isascii() and price_raw.isdigit()
            and int(price_raw) <= MAX_PRICE_FEN):
        return ParsedRow(line, sku, name, category, int(price_raw), active), None
    problems: list[str] = []
    if not sku:
        problems.append(_("sku 不能为空"))
    _check_length(problems, sku, _SKU_MAX, "sku")
    if not name:
        problems.append(_("name 不能为空"))
    _check_length(problems, name, _NAME_MAX, "name")
    if not category:
        problems.append(_("category 不能为空"))
    _check_length(problems, category, _CATEGORY_MAX, "category")
    price = 0
    if not _DIGITS.fullmatch(price_raw) or int(price_raw) > MAX_PRICE_FEN:
        problems.append(_("price_fen 应为不小于 0 的整数（单位：分），实际为“%(v)s”") % {"v": price_raw})
    else:
        price = int(price_raw)
    active = True
    if active_raw in FALSE_WORDS:
        active = False
    elif active_raw and active_raw not in TRUE_WORDS:
        problems.append(_("active 应为 1/0/true/false/yes/no，实际为“%(v)s”") % {"v": active_raw})
    if problems:
        return None, RowError(line, "；".join(problems), sku)
    return ParsedRow(line, sku, name, category, price, active), None


@dataclass
class Parsed:
    rows: list[ParsedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    records: int = 0  # data rows read, valid or not


def parse_items_csv(data: bytes, *, progress: Progress | None = None) -> Parsed:
    """Every valid row and every error (header problems, bad values, repeated skus)."""
    text, error = _decode(data)
    if error:
        return Parsed(errors=[error])
    records = _records(text)
    first = next(records, None)
    if first is None:
        return Parsed(errors=[RowError(1, _("文件是空的：第一行应为表头 sku,name,category,price_fen[,active]"))])
    columns, errors = _header(*first)
    if columns is None:
        return Parsed(errors=errors)
    parsed = Parsed(errors=errors)
    rows = parsed.rows
    seen: dict[str, int] = {}
    for line, record in (progress(records) if progress else records):
        parsed.records += 1
        row, error = _row(line, record, columns)
        if error:
            errors.append(error)
            continue
        first_line = seen.setdefault(row.sku, line)
        if first_line != line:
            errors.append(RowError(line, _("sku %(sku)s 重复（第 %(first)d 行已出现）")
                                   % {"sku": row.sku, "first": first_line}, row.sku))
            continue
        rows.append(row)
    if not parsed.records:
        errors.append(RowError(first[0], _("文件只有表头，没有商品行")))
    return parsed


# --- planning and writing: inside the tenant -------------------------------------------------

@dataclass
class _Plan:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    new_categories: list[str] = field(default_factory=list)
    preview: list[PreviewRow] = field(default_factory=list)
    # What to write, when the plan is made in Python; the staged plan writes from its table.
    creates: list[ParsedRow] = field(default_factory=list)
    updates: list[tuple[int, ParsedRow]] = field(default_factory=list)


def _existing_items(skus: list[str]) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    for start in range(0, len(skus), BATCH):
        chunk = skus[start:start + BATCH]
        for row in Item.objects.filter(sku__in=chunk).values_list(
                "sku", "id", "name", "category__name", "price_fen", "active"):
            found[row[0]] = row[1:]
    return found


def _status(row: ParsedRow, current: tuple | None) -> tuple[str, tuple[str, ...]]:
    """"new", "updated" or "unchanged", and which fields change, given the stored item (or None)."""
    if current is None:
        return "new", ()
    _item_id, name, category, price, active = current
    changed = tuple(label for label, old, new in (
        ("name", name, row.name), ("category", category, row.category),
        ("price_fen", price, row.price_fen), ("active", active, row.active)) if old != new)
    return ("updated" if changed else "unchanged"), changed


def _preview(rows: list[ParsedRow], existing: dict[str, tuple]) -> list[PreviewRow]:
    return [PreviewRow(r.line, r.sku, r.name, r.category, r.price_fen, r.active, *_status(r, existing.get(r.sku)))
            for r in rows[:PREVIEW_ROWS]]


def _plan(rows: list[ParsedRow]) -> _Plan:
    plan = _Plan()
    categories = set(Category.objects.values_list("name", flat=True))
    plan.new_categories = sorted({r.category for r in rows} - categories)
    existing = _existing_items([r.sku for r in rows])
    for row in rows:
        status, _changed = _status(row, existing.get(row.sku))
        if status == "new":
            plan.creates.append(row)
        elif status == "updated":
            plan.updates.append((existing[row.sku][0], row))
        else:
            plan.unchanged += 1
    plan.created, plan.updated = len(plan.creates), len(plan.updates)
    plan.preview = _preview(rows, existing)
    return plan


def _lock_catalogue(tenant: Tenant) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, tenant.pk])


def _update_items(tenant: Tenant, updates: list[tuple[int, ParsedRow]], category_ids: dict[str, int]) -> None:
    """One UPDATE … FROM (VALUES …) per batch: bulk_update's CASE chains are far slower at 100k rows."""
    table = connection.ops.quote_name(Item._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for start in range(0, len(updates), BATCH):
            chunk = updates[start:start + BATCH]
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
            params: list = []
            for item_id, row in chunk:
                params += [item_id, row.name, category_ids[row.category], row.price_fen, row.active]
            cursor.execute(
                f"WITH v(id, name, category_id, price_fen, active) AS (VALUES {values}) "  # noqa: S608 - placeholders only
                f"UPDATE {table} SET name = v.name, category_id = v.category_id, price_fen = v.price_fen, "
                f"active = v.active, updated_at = %s FROM v WHERE {table}.id = v.id AND {table}.tenant_id = %s",
                [*params, now, tenant.pk],
            )


def _create_categories(names: list[str]) -> None:
    Category.objects.bulk_create([Category(name=n) for n in names], ignore_conflicts=True)


def _apply(tenant: Tenant, plan: _Plan) -> None:
    _create_categories(plan.new_categories)
    category_ids = dict(Category.objects.values_list("name", "id"))
    Item.objects.bulk_create(
        [Item(sku=r.sku, name=r.name, category_id=category_ids[r.category], price_fen=r.price_fen,
              active=r.active) for r in plan.creates],
        batch_size=BATCH,
    )
    _update_items(tenant, plan.updates, category_ids)


# --- the same on PostgreSQL, from a staging table ------------------------------------------------

_STAGE = "catalog_import_stage"
_STAGE_COLUMNS = (("line", "int4"), ("sku", "text"), ("name", "text"), ("category", "text"), ("price_fen", "int8"),
                  ("active", "bool"))
# Table and column names below are this module's constants; every value is a parameter.
_ITEM, _CATEGORY = Item._meta.db_table, Category._meta.db_table
_CHANGED = "i.name <> s.name OR {category} OR i.price_fen <> s.price_fen OR i.active <> s.active"
_COUNT_SQL = f"""
    SELECT count(*) FILTER (WHERE i.id IS NULL),
           count(*) FILTER (WHERE i.id IS NOT NULL AND ({_CHANGED.format(category="c.name <> s.category")})),
           count(*) FILTER (WHERE i.id IS NOT NULL AND NOT ({_CHANGED.format(category="c.name <> s.category")}))
    FROM {_STAGE} s
    LEFT JOIN {_ITEM} i ON i.tenant_id = %(tenant)s AND i.sku = s.sku
    LEFT JOIN {_CATEGORY} c ON c.tenant_id = %(tenant)s AND c.id = i.category_id
"""  # noqa: S608
_NEW_CATEGORIES_SQL = f"""
    SELECT DISTINCT s.category FROM {_STAGE} s
    WHERE NOT EXISTS (SELECT 1 FROM {_CATEGORY} c WHERE c.tenant_id = %(tenant)s AND c.name = s.category)
"""  # noqa: S608
_UPDATE_SQL = f"""
    UPDATE {_ITEM} AS i
    SET name = s.name, category_id = c.id, price_fen = s.price_fen, active = s.active, updated_at = %(now)s
    FROM {_STAGE} s JOIN {_CATEGORY} c ON c.tenant_id = %(tenant)s AND c.name = s.category
    WHERE i.tenant_id = %(tenant)s AND i.sku = s.sku AND ({_CHANGED.format(category="i.category_id <> c.id")})
"""  # noqa: S608
_INSERT_SQL = f"""
    INSERT INTO {_ITEM} (tenant_id, sku, name, category_id, price_fen, active, created_at, updated_at)
    SELECT %(tenant)s, s.sku, s.name, c.id, s.price_fen, s.active, %(now)s, %(now)s
    FROM {_STAGE} s JOIN {_CATEGORY} c ON c.tenant_id = %(tenant)s AND c.name = s.category
    WHERE NOT EXISTS (SELECT 1 FROM {_ITEM} i WHERE i.tenant_id = %(tenant)s AND i.sku = s.sku)
    ORDER BY s.line
"""  # noqa: S608


@contextmanager
def _staged(rows: list[ParsedRow]) -> Iterator[None]:
    """The rows in a temporary table for the rest of the block (dropped at its end)."""
    columns = ", ".join(name for name, _type in _STAGE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {_STAGE} ("  # noqa: S608
                       f"{', '.join(f'{name} {type_}' for name, type_ in _STAGE_COLUMNS)}) ON COMMIT DROP")
    # COPY through the raw psycopg cursor, in the same transaction; its errors raised as Django's.
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {_STAGE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:  # noqa: S608
            copy.set_types([type_ for _name, type_ in _STAGE_COLUMNS])
            for r in rows:
                copy.write_row((r.line, r.sku, r.name, r.category, r.price_fen, r.active))
    with connection.cursor() as cursor:
        # Temporary tables are never auto-analysed: without row counts the joins below would be
        # planned as if the table were small.
        cursor.execute(f"ANALYZE {_STAGE}")
    yield
    with connection.cursor() as cursor:
        # ON COMMIT DROP alone would leave it behind inside an enclosing transaction.
        cursor.execute(f"DROP TABLE {_STAGE}")


def _plan_staged(tenant: Tenant, rows: list[ParsedRow]) -> _Plan:
    plan = _Plan()
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, {"tenant": tenant.pk})
        plan.created, plan.updated, plan.unchanged = cursor.fetchone()
        cursor.execute(_NEW_CATEGORIES_SQL, {"tenant": tenant.pk})
        plan.new_categories = sorted(name for (name,) in cursor.fetchall())
    head = rows[:PREVIEW_ROWS]
    plan.preview = _preview(head, _existing_items([r.sku for r in head]))
    return plan


def _apply_staged(tenant: Tenant, plan: _Plan) -> None:
    _create_categories(plan.new_categories)
    params = {"tenant": tenant.pk, "now": timezone.now()}
    with connection.cursor() as cursor:
        # Changed items first, so the UPDATE does not visit the rows the INSERT is about to add.
        cursor.execute(_UPDATE_SQL, params)
        cursor.execute(_INSERT_SQL, params)


def import_items(tenant: Tenant, data: bytes, *, actor=None, dry_run: bool = False, source: str = "",
                 progress: Progress | None = None) -> ImportReport:
    """Validate the whole file; unless ``dry_run`` or invalid, create and update items in one transaction."""
    parsed = parse_items_csv(data, progress=progress)
    rows = parsed.rows
    report = ImportReport(total_rows=parsed.records, errors=parsed.errors)
    if report.errors:
        return report
    try:
        with tenant_context(tenant), transaction.atomic():
            _lock_catalogue(tenant)
            if connection.vendor == "postgresql":
                with _staged(rows):
                    plan = _plan_staged(tenant, rows)
                    if not dry_run:
                        _apply_staged(tenant, plan)
            else:
                plan = _plan(rows)
                if not dry_run:
                    _apply(tenant, plan)
            report.created, report.updated, report.unchanged = plan.created, plan.updated, plan.unchanged
            report.new_categories, report.preview = plan.new_categories, plan.preview
            if dry_run:
                return report
            audit(tenant, "catalog.imported", actor=actor, target=source[:200], rows=len(rows),
                  created=report.created, updated=report.updated, unchanged=report.unchanged,
                  categories_created=len(plan.new_categories))
    except IntegrityError:
        # Only a concurrent writer outside the import lock (e.g. a console edit) can get here.
        report.errors.append(RowError(0, _("导入期间商品被同时修改，请重试。")))
        return report
    report.applied = True
    return report
