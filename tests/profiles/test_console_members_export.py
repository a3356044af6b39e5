"""CSV export of the filtered member list: streamed chunk by chunk, masked phones, no context leak."""

from __future__ import annotations

import csv
import io

import pytest
from django.http import StreamingHttpResponse
from django.test import Client

from profiles import console_views
from profiles.models import MemberTag, Tag
from tenants.context import current_tenant, tenant_context
from tenants.models import AuditEvent
from tests.profiles.test_console_members import make_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(tenant_a, tenant_b):
    return make_people(tenant_a), make_people(tenant_b)


@pytest.fixture
def console_a(owner_a):
    client = Client()
    client.force_login(owner_a)
    return client


def parse(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_export_has_the_filtered_rows_in_list_order(people, tenant_a, console_a):
    a, _ = people
    with tenant_context(tenant_a):
        vip = Tag.objects.create(name="VIP")
        new = Tag.objects.create(name="新客")
        MemberTag.objects.create(member=a["bob"], tag=vip)
        MemberTag.objects.create(member=a["bob"], tag=new)
    response = console_a.get("/console/shop-a/members/export.csv", {"tier": "silver", "sort": "-points"})
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="members-shop-a-')
    rows = parse(response)
    assert rows[0] == console_views.EXPORT_HEADER
    dave, bob = a["dave"], a["bob"]
    assert rows[1:] == [
        [str(dave.pk), dave.openid, "Dave", "", "silver", "900", "", "0", "0",
         console_views._time(dave.first_seen_at), ""],
        [str(bob.pk), bob.openid, "Bob", "139****1234", "silver", "500", "VIP|新客", "0", "1",
         console_views._time(bob.first_seen_at), console_views._time(bob.last_seen_at)],
    ]
    assert "13900001234" not in str(rows)
    with tenant_context(tenant_a):
        audit = AuditEvent.objects.get(action="members.exported")
    assert audit.details == {"filters": {"search": "auto", "tier": "silver", "sort": "-points"}}


def test_export_streams_in_chunks_outside_the_tenant_context(people, tenant_a, console_a, monkeypatch):
    a, b = people
    monkeypatch.setattr(console_views, "EXPORT_CHUNK", 3)
    response = console_a.get("/console/shop-a/members/export.csv")
    chunks = iter(response.streaming_content)
    header = next(chunks)
    assert current_tenant() is None
    bodies = []
    for chunk in chunks:
        assert current_tenant() is None  # each chunk entered and left the context itself
        bodies.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
    assert header.decode().startswith("\ufeffid,openid")
    assert [len(list(csv.reader(io.StringIO(b)))) for b in bodies] == [3, 3, 2]
    ids = [int(r[0]) for b in bodies for r in csv.reader(io.StringIO(b))]
    assert sorted(ids) == sorted(m.pk for m in a.values())
    assert not set(ids) & {m.pk for m in b.values()}


def test_export_defuses_spreadsheet_formulas(people, console_a):
    rows = parse(console_a.get("/console/shop-a/members/export.csv", {"q": "=cmd", "search": "nickname"}))
    assert [r[2] for r in rows[1:]] == ["'=cmd|' /C calc'!A0"]


def test_export_of_another_tenant_is_404(people, console_a):
    assert console_a.get("/console/shop-b/members/export.csv").status_code == 404
