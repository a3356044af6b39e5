"""Member fixtures: look-alike members (same openid) in tenant_a and tenant_b, tokens, the sandbox."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from profiles import tokens
from profiles.models import Member
from tenants.context import tenant_context
from wechat.testing import sandbox_transport

SAME_OPENID = "o_lookalike_openid_000000001"


@pytest.fixture
def wechat_sandbox():
    with sandbox_transport() as routed:
        yield routed


def make_member(tenant, openid: str = SAME_OPENID, **fields) -> Member:
    with tenant_context(tenant):
        return Member.objects.create(openid=openid, **fields)


@pytest.fixture
def member_a(tenant_a):
    return make_member(tenant_a, nickname="Alice", city="上海", phone="13800000001", phone_masked="138****0001",
                       unionid="oU_union_alice")


@pytest.fixture
def member_b(tenant_b):
    return make_member(tenant_b, nickname="Alice", city="上海", phone="13800000001", phone_masked="138****0001",
                       unionid="oU_union_alice")


def auth(member: Member, kind: tokens.Kind = tokens.ACCESS) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(member.tenant_id, member.pk, kind)}"}


class Api:
    """A JSON client for /api/v1/ that answers (status, parsed body)."""

    def __init__(self) -> None:
        self.client = Client()

    def call(self, method: str, path: str, body=None, **headers):
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        response = self.client.generic(method, f"/api/v1/{path}", data=data or "",
                                       content_type="application/json", **headers)
        parsed = json.loads(response.content) if response.content else None
        return response.status_code, parsed, response


@pytest.fixture
def api() -> Api:
    return Api()
