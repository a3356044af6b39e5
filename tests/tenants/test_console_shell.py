"""The console shell: login, tenant switcher, dashboard, navigation registry, language, filters."""

from __future__ import annotations

import datetime

import pytest
from django.http import HttpResponse
from django.template import Context, Template
from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns
from tenants import actions, console_nav
from tests.fixtures import PASSWORD, make_staff

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_login_and_can_log_in(client, tenant_a, owner_a):
    response = client.get("/console/shop-a/settings/")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/shop-a/settings/"

    page = client.get("/console/login/")
    assert page.status_code == 200
    assert "登录商户后台" in page.content.decode()

    response = client.post("/console/login/", {"username": "owner-a", "password": PASSWORD,
                                                "next": "/console/shop-a/settings/"})
    assert response.status_code == 302
    assert response["Location"] == "/console/shop-a/settings/"


def test_wrong_password_is_refused_in_words(client, owner_a):
    response = client.post("/console/login/", {"username": "owner-a", "password": "nope-nope-nope"})
    assert response.status_code == 200
    assert "用户名或密码不正确" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post_and_ends_the_session(client, owner_a):
    client.force_login(owner_a)
    response = client.post("/console/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/"
    assert client.get("/console/shop-a/").status_code == 302


def test_home_goes_straight_to_the_only_tenant(client, owner_a):
    client.force_login(owner_a)
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"] == "/console/shop-a/"


def test_home_lists_every_tenant_of_the_user_and_no_other(client, tenant_a, tenant_b, db):
    third = actions.create_tenant(slug="shop-c", name="Shop C")
    user = make_staff(tenant_a, "multi", "owner").user
    actions.create_staff(tenant_b, username="multi", role="analyst")
    actions.set_tenant_status(tenant_b, "suspended")
    client.force_login(user)
    html = client.get("/console/").content.decode()
    assert "/console/shop-a/" in html and "/console/shop-b/" in html
    assert "Shop C" not in html and third.slug not in html
    assert "已停用" in html  # Shop B is shown with its status


def test_home_without_tenants_says_so(client, db, django_user_model):
    client.force_login(django_user_model.objects.create_user("lonely", password=PASSWORD))
    response = client.get("/console/")
    assert response.status_code == 200
    assert "你还不是任何商户的员工" in response.content.decode()


def test_dashboard_shows_tenant_status_role_and_links(client, tenant_a, tenant_b, staff_factory):
    user = staff_factory(tenant_a, "op-a", "operator").user
    client.force_login(user)
    response = client.get("/console/shop-a/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Shop A" in html and "Shop B" not in html
    assert "正常" in html and "运营" in html
    assert "wxa0000000000000a1" in html and "wxb0000000000000b1" not in html
    for label in ("会员", "人群", "优惠券", "营销活动", "订单", "报表", "设置"):
        assert label in html
    assert 'href="/console/shop-a/settings/"' in html


def test_switcher_lists_only_my_tenants(client, tenant_a, tenant_b, db):
    user = make_staff(tenant_a, "both", "owner").user
    actions.create_staff(tenant_b, username="both", role="manager")
    actions.create_tenant(slug="shop-c", name="Shop C")
    client.force_login(user)
    html = client.get("/console/shop-a/").content.decode()
    assert 'href="/console/shop-b/"' in html
    assert "shop-c" not in html


def test_unknown_slug_and_non_member_both_404(client, tenant_a, tenant_b, owner_a):
    client.force_login(owner_a)
    assert client.get("/console/no-such-shop/").status_code == 404
    assert client.get("/console/shop-b/").status_code == 404


def test_deactivated_member_is_a_non_member(client, tenant_a, owner_a, staff_factory):
    membership = staff_factory(tenant_a, "leaver", "operator")
    actions.set_staff_active(tenant_a, membership.pk, False)
    client.force_login(membership.user)
    assert client.get("/console/shop-a/").status_code == 404


def test_suspended_tenant_answers_403_with_a_clear_message(client, tenant_a, tenant_b, owner_a, owner_b):
    actions.set_tenant_status(tenant_a, "suspended")
    client.force_login(owner_a)
    for url in ("/console/shop-a/", "/console/shop-a/settings/", "/console/shop-a/settings/staff/"):
        response = client.get(url)
        assert response.status_code == 403
        assert "商户“Shop A”的服务已被停用" in response.content.decode()
    response = client.post("/console/shop-a/settings/", {"name": "Changed while suspended"})
    assert response.status_code == 403
    tenant_a.refresh_from_db()
    assert tenant_a.name == "Shop A"
    client.force_login(owner_b)
    assert client.get("/console/shop-b/").status_code == 200


def test_suspended_message_in_english(client, tenant_a, owner_a):
    actions.set_tenant_status(tenant_a, "suspended")
    client.force_login(owner_a)
    client.post("/i18n/setlang/", {"language": "en", "next": "/console/"})
    html = client.get("/console/shop-a/").content.decode()
    assert "The service of Shop A has been suspended." in html


def test_language_switch_to_english_and_back(client, owner_a):
    client.force_login(owner_a)
    assert "会员" in client.get("/console/shop-a/").content.decode()
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/console/shop-a/"})
    assert response.status_code == 302 and response["Location"] == "/console/shop-a/"
    html = client.get("/console/shop-a/").content.decode()
    assert '<html lang="en">' in html
    for label in ("Members", "Segments", "Coupons", "Campaigns", "Orders", "Reports", "Settings"):
        assert label in html
    assert "会员" not in html
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/console/shop-a/"})
    assert '<html lang="zh-hans">' in client.get("/console/shop-a/").content.decode()


def test_flash_messages_are_shown_once(client, owner_a):
    client.force_login(owner_a)
    response = client.post("/console/shop-a/settings/", {"name": "Shop A+"}, follow=True)
    assert "商户信息已保存。" in response.content.decode()
    assert "商户信息已保存。" not in client.get("/console/shop-a/settings/").content.decode()


# --- the navigation registry -------------------------------------------------------------------

def test_unmounted_sections_lead_to_coming_soon(client, owner_a):
    client.force_login(owner_a)
    html = client.get("/console/shop-a/").content.decode()
    assert 'href="/console/shop-a/s/reports/"' in html
    response = client.get("/console/shop-a/s/reports/")
    assert response.status_code == 200
    assert "即将上线" in response.content.decode()
    assert client.get("/console/shop-a/s/no-such-section/").status_code == 404


def _reports_index(request):
    return HttpResponse(f"reports of {request.tenant.slug}")


reports_urls = ([path("", _reports_index, name="index")], "reports")
urlpatterns = [path("console/<slug:tenant_slug>/reports/", include(reports_urls)), *project_urlpatterns]


def test_a_section_lights_up_once_its_app_mounts_its_urls(client, settings, owner_a):
    settings.ROOT_URLCONF = __name__
    client.force_login(owner_a)
    html = client.get("/console/shop-a/").content.decode()
    assert 'href="/console/shop-a/reports/"' in html
    assert 'href="/console/shop-a/s/reports/"' not in html
    # The placeholder forwards to the real page, and the real page runs in the tenant's context.
    response = client.get("/console/shop-a/s/reports/")
    assert response.status_code == 302 and response["Location"] == "/console/shop-a/reports/"
    assert client.get("/console/shop-a/reports/").content == b"reports of shop-a"


def test_nav_registry_marks_the_active_section():
    links = {link.key: link for link in console_nav.links("shop-a", "/console/shop-a/settings/staff/")}
    assert links["settings"].active and links["settings"].available
    assert links["settings"].url == "/console/shop-a/settings/"
    assert not links["reports"].active
    # Apps may register more sections (the catalogue does); the seven of the shell keep their order.
    keys = [link.key for link in console_nav.links("shop-a")]
    shell = ["members", "segments", "coupons", "campaigns", "orders", "reports", "settings"]
    assert [key for key in keys if key in shell] == shell


def test_nav_register_adds_and_replaces(monkeypatch):
    monkeypatch.setattr(console_nav, "NAV", list(console_nav.NAV))
    console_nav.register(console_nav.NavEntry("loyalty", "会员权益", "loyalty:index"), before="orders")
    console_nav.register(console_nav.NavEntry("reports", "Reports!", "reports:index"))
    console_nav.register(console_nav.NavEntry("extra", "其他", "extra:index"), before="no-such-key")
    keys = [e.key for e in console_nav.NAV]
    assert keys.index("loyalty") == keys.index("orders") - 1
    assert keys[-1] == "extra"
    assert keys.count("reports") == 1 and console_nav.entry("reports").label == "Reports!"


# --- filters every console page uses -----------------------------------------------------------

@pytest.mark.parametrize(("value", "shown"), [
    (1234, "¥12.34"), (0, "¥0.00"), (5, "¥0.05"), (-5, "-¥0.05"), (100, "¥1.00"),
    (123456789, "¥1,234,567.89"), ("250", "¥2.50"), (None, ""), ("abc", ""),
])
def test_fen_filter(value, shown):
    assert Template("{% load console %}{{ v|fen }}").render(Context({"v": value})) == shown


def test_shanghai_filter_converts_from_utc_whatever_the_active_zone():
    from django.utils import timezone

    moment = datetime.datetime(2026, 1, 1, 16, 30, tzinfo=datetime.UTC)
    template = Template('{% load console %}{{ t|shanghai }}|{{ t|shanghai:"Y-m-d" }}|{{ d|shanghai }}|{{ n|shanghai }}')
    with timezone.override("America/New_York"):
        rendered = template.render(Context({"t": moment, "d": datetime.date(2026, 2, 3), "n": None}))
    assert rendered == "2026-01-02 00:30|2026-01-02|2026-02-03|"
