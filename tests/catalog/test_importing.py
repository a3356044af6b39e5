"""CSV import: validated whole before anything is written, applied in one go, per tenant."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from catalog.importing import import_items, parse_items_csv
from catalog.models import Category, Item
from tenants.context import tenant_context
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def csv_bytes(*lines: str, bom: bool = False) -> bytes:
    return (("\ufeff" if bom else "") + "\n".join(lines) + "\n").encode()


def items_of(tenant) -> dict[str, tuple]:
    with tenant_context(tenant):
        return {i.sku: (i.name, i.category.name, i.price_fen, i.active)
                for i in Item.objects.select_related("category")}


GOOD = csv_bytes(
    "sku,name,category,price_fen,active",
    "LATTE,拿铁,咖啡,2800,1",
    "MOCHA,摩卡,咖啡,3200,yes",
    "CAKE,芝士蛋糕,甜点,3500,false",
)


def test_valid_file_creates_items_and_categories(tenant_a):
    report = import_items(tenant_a, GOOD, source="menu.csv")
    assert report.ok and report.applied
    assert (report.total_rows, report.created, report.updated, report.unchanged) == (3, 3, 0, 0)
    assert report.new_categories == ["咖啡", "甜点"]
    assert items_of(tenant_a) == {
        "LATTE": ("拿铁", "咖啡", 2800, True),
        "MOCHA": ("摩卡", "咖啡", 3200, True),
        "CAKE": ("芝士蛋糕", "甜点", 3500, False),
    }
    with tenant_context(tenant_a):
        audit = AuditEvent.objects.get(action="catalog.imported")
    assert audit.target == "menu.csv"
    assert audit.details == {"rows": 3, "created": 3, "updated": 0, "unchanged": 0, "categories_created": 2}


def test_bom_optional_active_column_and_column_order(tenant_a):
    data = csv_bytes("price_fen, Category ,name,SKU", "100,茶,绿茶,TEA", bom=True)
    report = import_items(tenant_a, data)
    assert report.ok
    assert items_of(tenant_a) == {"TEA": ("绿茶", "茶", 100, True)}


def test_mixed_good_and_bad_rows_report_every_error_and_write_nothing(tenant_a):
    data = csv_bytes(
        "sku,name,category,price_fen,active",
        "OK1,好的,咖啡,100,1",
        ",无 SKU,咖啡,100,1",
        "NEG,负数,咖啡,-5,1",
        "",
        "DEC,小数,咖啡,12.5,1",
        "ACT,状态,咖啡,100,maybe",
        "OK1,重复,咖啡,200,1",
        "SHORT,少一列,咖啡,100",
        '"MULTI","两行\n名称",,100,1',
        "OK2,也好,甜点,0,no",
    )
    report = import_items(tenant_a, data)
    assert not report.ok and not report.applied
    assert [(e.line, e.sku) for e in report.errors] == [
        (3, ""), (4, "NEG"), (6, "DEC"), (7, "ACT"), (8, "OK1"), (9, ""), (10, "MULTI"),
    ]
    messages = [e.message for e in report.errors]
    assert messages[0] == "sku 不能为空"
    assert messages[1] == "price_fen 应为不小于 0 的整数（单位：分），实际为“-5”"
    assert messages[2] == "price_fen 应为不小于 0 的整数（单位：分），实际为“12.5”"
    assert messages[3] == "active 应为 1/0/true/false/yes/no，实际为“maybe”"
    assert messages[4] == "sku OK1 重复（第 2 行已出现）"
    assert messages[5] == "列数不对：应为 5 列，实际 4 列"
    assert messages[6] == "category 不能为空"
    assert str(report.errors[0]) == "第 3 行：sku 不能为空"
    assert report.total_rows == 9
    assert items_of(tenant_a) == {}
    with tenant_context(tenant_a):
        assert Category.objects.count() == 0
        assert not AuditEvent.objects.filter(action="catalog.imported").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "文件是空的：第一行应为表头 sku,name,category,price_fen[,active]"),
        (csv_bytes("sku,name,price_fen"), "缺少列：category（需要 sku,name,category,price_fen，可选 active）"),
        (csv_bytes("sku,name,category,price_fen,colour", "A,a,c,1,red"), "无法识别的列：colour"),
        (csv_bytes("sku,name,category,price_fen"), "文件只有表头，没有商品行"),
        ("sku,name,category,price_fen\nA,咖啡,c,1\n".encode("gbk"),
         "文件不是 UTF-8 编码（请在 Excel 中另存为“CSV UTF-8”）。"),
    ],
)
def test_file_level_errors(tenant_a, data, message):
    report = import_items(tenant_a, data)
    assert [e.message for e in report.errors] == [message]
    assert items_of(tenant_a) == {}


def test_gbk_error_points_at_the_line(tenant_a):
    data = "sku,name,category,price_fen\nA,a,c,1\nB,咖啡,c,1\n".encode("gbk")
    assert [e.line for e in parse_items_csv(data).errors] == [3]


def test_existing_skus_are_updated_unchanged_ones_counted(tenant_a):
    import_items(tenant_a, GOOD)
    update = csv_bytes(
        "sku,name,category,price_fen,active",
        "LATTE,拿铁,咖啡,2800,1",        # unchanged
        "MOCHA,摩卡（大）,饮品,3600,1",    # name, category (new), price
        "CAKE,芝士蛋糕,甜点,3500,1",       # active again
        "TEA,绿茶,饮品,1500,1",            # new
    )
    dry = import_items(tenant_a, update, dry_run=True)
    assert (dry.created, dry.updated, dry.unchanged, dry.applied) == (1, 2, 1, False)
    assert [(p.sku, p.status, p.changed) for p in dry.preview] == [
        ("LATTE", "unchanged", ()),
        ("MOCHA", "updated", ("name", "category", "price_fen")),
        ("CAKE", "updated", ("active",)),
        ("TEA", "new", ()),
    ]
    assert items_of(tenant_a)["MOCHA"] == ("摩卡", "咖啡", 3200, True)

    with tenant_context(tenant_a):
        ids_before = dict(Item.objects.values_list("sku", "id"))
    report = import_items(tenant_a, update)
    assert (report.created, report.updated, report.unchanged, report.new_categories) == (1, 2, 1, ["饮品"])
    assert items_of(tenant_a) == {
        "LATTE": ("拿铁", "咖啡", 2800, True),
        "MOCHA": ("摩卡（大）", "饮品", 3600, True),
        "CAKE": ("芝士蛋糕", "甜点", 3500, True),
        "TEA": ("绿茶", "饮品", 1500, True),
    }
    with tenant_context(tenant_a):
        ids_after = dict(Item.objects.values_list("sku", "id"))
    assert {k: ids_after[k] for k in ids_before} == ids_before


def test_two_tenants_with_the_same_skus_stay_separate(tenant_a, tenant_b):
    import_items(tenant_a, GOOD)
    other = csv_bytes("sku,name,category,price_fen", "LATTE,B 的拿铁,咖啡,1", "ONLYB,乙,咖啡,2")
    report = import_items(tenant_b, other)
    # tenant_b's LATTE is new for tenant_b even though tenant_a has the same sku.
    assert (report.created, report.updated, report.new_categories) == (2, 0, ["咖啡"])
    assert items_of(tenant_b) == {"LATTE": ("B 的拿铁", "咖啡", 1, True), "ONLYB": ("乙", "咖啡", 2, True)}
    assert items_of(tenant_a)["LATTE"] == ("拿铁", "咖啡", 2800, True)
    assert "ONLYB" not in items_of(tenant_a)


def test_large_file_is_one_bulk_write(tenant_a, django_assert_max_num_queries):
    lines = ["sku,name,category,price_fen"] + [f"S{i:05d},商品{i},分类{i % 7},{i}" for i in range(5000)]
    data = csv_bytes(*lines)
    # SQLite caps the parameters of one statement, so its inserts come in smaller batches.
    inserts = -(-5000 // connection.ops.bulk_batch_size(Item._meta.concrete_fields, [Item()] * 5000))
    with django_assert_max_num_queries(20 + inserts):
        report = import_items(tenant_a, data)
    assert report.created == 5000
    changed = csv_bytes(*(lines[:1] + [f"S{i:05d},商品{i},分类{i % 7},{i + 1}" for i in range(5000)]))
    with django_assert_max_num_queries(30):
        report = import_items(tenant_a, changed)
    assert (report.created, report.updated) == (0, 5000)
    with tenant_context(tenant_a):
        assert Item.objects.get(sku="S04999").price_fen == 5000
        assert Category.objects.count() == 7


# --- the command ------------------------------------------------------------------------------

def run_command(*args):
    out, err = StringIO(), StringIO()
    call_command("import_items", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_imports_and_prints_the_preview(tenant_a, tmp_path):
    path = tmp_path / "menu.csv"
    path.write_bytes(GOOD)
    out, err = run_command("shop-a", str(path))
    assert out.splitlines()[0] == "rows: 3  new: 3  updated: 0  unchanged: 0  new categories: 2"
    assert "       2  new        LATTE  拿铁  咖啡  2800  active" in out
    assert "imported 3 change(s)" in out
    assert err == ""
    assert len(items_of(tenant_a)) == 3


def test_command_dry_run_writes_nothing(tenant_a, tmp_path):
    path = tmp_path / "menu.csv"
    path.write_bytes(GOOD)
    out, _ = run_command("shop-a", str(path), "--dry-run")
    assert "rows: 3  new: 3" in out
    assert out.rstrip().endswith("dry run: nothing written")
    assert items_of(tenant_a) == {}


def test_command_prints_row_errors_and_fails(tenant_a, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes("sku,name,category,price_fen", "A,a,c,1", "B,b,c,x"))
    err = StringIO()
    with pytest.raises(CommandError, match=r"^1 error\(s\) in 2 row\(s\); nothing imported$"):
        call_command("import_items", "shop-a", str(path), stdout=StringIO(), stderr=err)
    assert err.getvalue() == "第 3 行：price_fen 应为不小于 0 的整数（单位：分），实际为“x”\n"
    assert items_of(tenant_a) == {}


def test_command_exit_code_is_non_zero(tenant_a, tmp_path):
    from django.core.management import ManagementUtility

    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes("sku,name,category,price_fen", "B,b,c,x"))
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "import_items", "shop-a", str(path)]).execute()
    assert exit_info.value.code == 1


def test_command_unknown_tenant(db, tmp_path):
    path = tmp_path / "menu.csv"
    path.write_bytes(GOOD)
    with pytest.raises(CommandError, match="no tenant 'nope'"):
        run_command("nope", str(path))
