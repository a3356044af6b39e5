"""Catalogue console: item list, edit, categories, and the upload → preview → confirm import."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog import console_views
from catalog.importing import import_items
from catalog.models import Category, Item
from tenants.context import tenant_context
from tests.fixtures import make_staff

pytestmark = pytest.mark.django_db

MENU = "sku,name,category,price_fen,active\nLATTE,拿铁,咖啡,2800,1\nCAKE,芝士蛋糕,甜点,3500,0\n".encode()


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.CATALOG_IMPORT_DIR = str(tmp_path / "imports")


@pytest.fixture
def console_a(owner_a):
    client = Client()
    client.force_login(owner_a)
    return client


def skus(tenant) -> dict[str, tuple]:
    with tenant_context(tenant):
        return {i.sku: (i.name, i.price_fen, i.active) for i in Item.objects.all()}


def upload(client, data: bytes, slug: str = "shop-a"):
    return client.post(f"/console/{slug}/catalog/import/", {"file": SimpleUploadedFile("menu.csv", data)})


def test_upload_preview_then_confirm(tenant_a, tenant_b, console_a, tmp_path):
    response = upload(console_a, MENU)
    assert response.status_code == 302
    token = re.fullmatch(r"/console/shop-a/catalog/import/([\w-]+)/", response["Location"]).group(1)
    preview = console_a.get(response["Location"])
    report = preview.context["report"]
    assert (report.ok, report.created, report.updated, report.applied) == (True, 2, 0, False)
    assert "确认导入" in preview.content.decode()
    assert skus(tenant_a) == {}
    done = console_a.post(response["Location"])
    assert done.status_code == 302 and done["Location"] == "/console/shop-a/catalog/"
    assert skus(tenant_a) == {"LATTE": ("拿铁", 2800, True), "CAKE": ("芝士蛋糕", 3500, False)}
    assert skus(tenant_b) == {}
    assert not list((tmp_path / "imports").glob(f"*{token}*"))
    assert console_a.post(response["Location"]).status_code == 404  # the upload is spent


def test_invalid_upload_lists_errors_and_offers_no_confirm(tenant_a, console_a):
    response = upload(console_a, b"sku,name,category,price_fen\nA,a,c,1\nB,b,c,-1\n")
    preview = console_a.get(response["Location"])
    body = preview.content.decode()
    assert "第 3 行：price_fen 应为不小于 0 的整数（单位：分），实际为“-1”" in body
    assert "确认导入" not in body
    assert console_a.post(response["Location"]).status_code == 200
    assert skus(tenant_a) == {}


def test_another_session_or_tenant_cannot_use_the_token(tenant_a, tenant_b, console_a, owner_b):
    location = upload(console_a, MENU)["Location"]
    other = Client()
    other.force_login(make_staff(tenant_a, "operator-a", "operator").user)
    assert other.get(location).status_code == 404
    b_client = Client()
    b_client.force_login(owner_b)
    assert b_client.post(location.replace("shop-a", "shop-b")).status_code == 404
    assert skus(tenant_a) == {} and skus(tenant_b) == {}


def test_analyst_cannot_import(tenant_a):
    client = Client()
    client.force_login(make_staff(tenant_a, "analyst-a", "analyst").user)
    assert client.get("/console/shop-a/catalog/import/").status_code == 403
    assert upload(client, MENU).status_code == 403
    assert client.get("/console/shop-a/catalog/").status_code == 200


def test_item_list_search_filter_and_isolation(tenant_a, tenant_b, console_a, monkeypatch):
    import_items(tenant_a, MENU)
    import_items(tenant_b, b"sku,name,category,price_fen\nLATTE,B,x,1\nBONLY,B,x,2\n")
    page = console_a.get("/console/shop-a/catalog/")
    assert [i.sku for i in page.context["page_obj"]] == ["CAKE", "LATTE"]
    assert "¥28.00" in page.content.decode()
    assert [i.sku for i in console_a.get("/console/shop-a/catalog/?q=拿").context["page_obj"]] == ["LATTE"]
    assert [i.sku for i in console_a.get("/console/shop-a/catalog/?q=CA").context["page_obj"]] == ["CAKE"]
    assert [i.sku for i in console_a.get("/console/shop-a/catalog/?active=no").context["page_obj"]] == ["CAKE"]
    with tenant_context(tenant_a):
        coffee = Category.objects.get(name="咖啡")
    assert [i.sku for i in console_a.get(f"/console/shop-a/catalog/?category={coffee.pk}").context["page_obj"]] == [
        "LATTE"]
    monkeypatch.setattr(console_views, "PAGE_SIZE", 1)
    second = console_a.get("/console/shop-a/catalog/?page=2")
    assert [i.sku for i in second.context["page_obj"]] == ["LATTE"]


def test_item_create_and_edit_and_other_tenants_item_is_404(tenant_a, tenant_b, console_a):
    import_items(tenant_a, MENU)
    import_items(tenant_b, b"sku,name,category,price_fen\nLATTE,B,x,1\n")
    with tenant_context(tenant_a):
        coffee = Category.objects.get(name="咖啡")
        latte = Item.objects.get(sku="LATTE")
    with tenant_context(tenant_b):
        latte_b = Item.objects.get(sku="LATTE")
    created = console_a.post("/console/shop-a/catalog/items/new/",
                             {"sku": "MOCHA", "name": "摩卡", "category": coffee.pk, "price_fen": 3200, "active": "on"})
    assert created.status_code == 302
    duplicate = console_a.post("/console/shop-a/catalog/items/new/",
                               {"sku": "MOCHA", "name": "x", "category": coffee.pk, "price_fen": 1})
    assert "SKU MOCHA 已存在。" in duplicate.content.decode()
    edited = console_a.post(f"/console/shop-a/catalog/items/{latte.pk}/",
                            {"sku": "IGNORED", "name": "大拿铁", "category": coffee.pk, "price_fen": 3000})
    assert edited.status_code == 302
    assert skus(tenant_a) == {"LATTE": ("大拿铁", 3000, False), "CAKE": ("芝士蛋糕", 3500, False),
                              "MOCHA": ("摩卡", 3200, True)}
    assert console_a.get(f"/console/shop-a/catalog/items/{latte_b.pk}/").status_code == 404
    assert console_a.post(f"/console/shop-a/catalog/items/{latte_b.pk}/",
                          {"name": "x", "category": coffee.pk, "price_fen": 1}).status_code == 404
    assert skus(tenant_b) == {"LATTE": ("B", 1, True)}


def test_categories_page_create_and_rename(tenant_a, tenant_b, console_a):
    import_items(tenant_a, MENU)
    assert console_a.post("/console/shop-a/catalog/categories/", {"name": "茶"}).status_code == 302
    duplicate = console_a.post("/console/shop-a/catalog/categories/", {"name": "茶"})
    assert "分类“茶”已存在。" in duplicate.content.decode()
    with tenant_context(tenant_a):
        tea = Category.objects.get(name="茶")
    with tenant_context(tenant_b):
        other = Category.objects.create(name="B")
    assert console_a.post(f"/console/shop-a/catalog/categories/{tea.pk}/rename/", {"name": "好茶"}).status_code == 302
    assert console_a.post(f"/console/shop-a/catalog/categories/{other.pk}/rename/", {"name": "x"}).status_code == 404
    page = console_a.get("/console/shop-a/catalog/categories/")
    assert sorted((c.name, c.item_count, c.active_count) for c in page.context["categories"]) == sorted([
        ("咖啡", 1, 1), ("好茶", 0, 0), ("甜点", 1, 0)])
    with tenant_context(tenant_b):
        assert Category.objects.get(pk=other.pk).name == "B"


def test_catalogue_is_in_the_console_navigation(tenant_a):
    from tenants import console_nav

    links = {link.key: link for link in console_nav.links("shop-a", "/console/shop-a/catalog/import/")}
    assert (links["catalog"].url, links["catalog"].available, links["catalog"].active) == (
        "/console/shop-a/catalog/", True, True)
    assert (links["members"].url, links["members"].available) == ("/console/shop-a/members/", True)
