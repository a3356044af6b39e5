"""Catalogue import at volume: the row check's quick path, and the set-based writes from a staging table."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from catalog import importing
from catalog.importing import MAX_PRICE_FEN, import_items, parse_items_csv
from catalog.models import Category, Item
from tenants.context import tenant_context
from tests.fixtures import postgres_only

pytestmark = pytest.mark.django_db


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def stored(tenant) -> dict[str, tuple]:
    with tenant_context(tenant):
        return {i.sku: (i.id, i.name, i.category.name, i.price_fen, i.active, i.created_at, i.updated_at)
                for i in Item.objects.select_related("category")}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", True), (str(MAX_PRICE_FEN), True), (str(MAX_PRICE_FEN + 1), False), ("１２３", False), ("٣", False),
        ("+5", False), (" 7 ", True), ("", False), ("1e3", False),
    ],
)
def test_price_must_be_ascii_digits_within_bigint(value, ok):
    parsed = parse_items_csv(csv_bytes("sku,name,category,price_fen", f"A,a,c,{value}"))
    assert bool(parsed.rows) is ok
    assert [e.line for e in parsed.errors] == ([] if ok else [2])


@pytest.mark.parametrize(("value", "active"), [("", True), ("YES", True), (" True ", True), ("1", True),
                                               ("No", False), ("FALSE", False), ("0", False)])
def test_active_words_in_any_case(value, active):
    parsed = parse_items_csv(csv_bytes("sku,name,category,price_fen,active", f"A,a,c,1,{value}"))
    assert [(r.sku, r.active) for r in parsed.rows] == [("A", active)]


def test_field_lengths_are_checked_at_their_limits():
    sku, name, category = (Item._meta.get_field("sku").max_length, Item._meta.get_field("name").max_length,
                           Category._meta.get_field("name").max_length)
    at_limit = csv_bytes("sku,name,category,price_fen", f"{'s' * sku},{'n' * name},{'c' * category},1")
    assert len(parse_items_csv(at_limit).rows) == 1
    over = csv_bytes("sku,name,category,price_fen", f"{'s' * (sku + 1)},{'n' * (name + 1)},{'c' * (category + 1)},1")
    parsed = parse_items_csv(over)
    assert parsed.rows == []
    assert [e.message for e in parsed.errors] == [
        f"sku 超过 {sku} 个字符；name 超过 {name} 个字符；category 超过 {category} 个字符"]


def test_only_changed_items_are_rewritten_and_ids_are_kept(tenant_a, tenant_b):
    first = csv_bytes("sku,name,category,price_fen", "A,甲,咖啡,100", "B,乙,咖啡,200", "C,丙,茶,300")
    import_items(tenant_a, first)
    import_items(tenant_b, first)
    before_a, before_b = stored(tenant_a), stored(tenant_b)

    report = import_items(tenant_a, csv_bytes("sku,name,category,price_fen,active", "A,甲,咖啡,100,1",
                                              "B,乙,甜点,250,1", "C,丙,茶,300,0", "D,丁,甜点,400,1"))

    assert (report.created, report.updated, report.unchanged, report.new_categories) == (1, 2, 1, ["甜点"])
    after = stored(tenant_a)
    assert after["A"] == before_a["A"]  # not even its updated_at moved
    assert after["B"][:5] == (before_a["B"][0], "乙", "甜点", 250, True)
    assert after["C"][:5] == (before_a["C"][0], "丙", "茶", 300, False)
    assert after["B"][5] == before_a["B"][5] and after["B"][6] > before_a["B"][6]
    assert after["D"][1:5] == ("丁", "甜点", 400, True)
    assert stored(tenant_b) == before_b
    with tenant_context(tenant_b):
        assert sorted(Category.objects.values_list("name", flat=True)) == ["咖啡", "茶"]


def test_new_items_get_ids_in_file_order(tenant_a):
    import_items(tenant_a, csv_bytes("sku,name,category,price_fen", "Z,z,c,1", "M,m,c,1", "A,a,c,1"))
    with tenant_context(tenant_a):
        assert list(Item.objects.order_by("id").values_list("sku", flat=True)) == ["Z", "M", "A"]


def _staging_tables() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = %s AND relpersistence = 't'",
                       [importing._STAGE])
        return cursor.fetchone()[0]


@postgres_only
def test_on_postgresql_the_statements_do_not_grow_with_the_file(tenant_a, tenant_b):
    def statements(tenant, rows: int, price: int) -> int:
        data = csv_bytes("sku,name,category,price_fen", *(f"S{i:05d},商品{i},分类{i % 3},{price}" for i in range(rows)))
        with CaptureQueriesContext(connection) as captured:
            report = import_items(tenant, data)
        assert report.applied
        return len(captured.captured_queries)

    assert statements(tenant_a, 20, 1) == statements(tenant_b, 3000, 1)  # all new
    assert statements(tenant_a, 20, 2) == statements(tenant_b, 3000, 2)  # all changed
    with tenant_context(tenant_b):
        assert Item.objects.filter(price_fen=2).count() == 3000
    assert _staging_tables() == 0


@postgres_only
def test_on_postgresql_a_failed_write_leaves_nothing_behind(tenant_a, monkeypatch):
    import_items(tenant_a, csv_bytes("sku,name,category,price_fen", "A,甲,咖啡,100"))
    before = stored(tenant_a)
    update = importing._apply_staged

    def update_then_fail(tenant, plan):
        update(tenant, plan)
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(importing, "_apply_staged", update_then_fail)
    report = import_items(tenant_a, csv_bytes("sku,name,category,price_fen", "A,甲,茶,999", "B,乙,茶,1"))

    assert not report.applied
    assert [e.message for e in report.errors] == ["导入期间商品被同时修改，请重试。"]
    assert stored(tenant_a) == before
    with tenant_context(tenant_a):
        assert list(Category.objects.values_list("name", flat=True)) == ["咖啡"]
    assert _staging_tables() == 0
    monkeypatch.undo()
    assert import_items(tenant_a, csv_bytes("sku,name,category,price_fen", "B,乙,茶,1")).applied
