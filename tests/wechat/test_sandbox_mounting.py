from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.urls import reverse


@pytest.mark.skipif(not settings.WECHAT_SANDBOX, reason="the sandbox is mounted only when WECHAT_SANDBOX is on")
def test_project_urls_mount_the_sandbox_where_the_bases_point(client):
    assert reverse("wechat_sandbox:jscode2session") == "/sandbox/wechat/sns/jscode2session"
    assert settings.WECHAT_API_BASE.endswith("/sandbox/wechat")
    assert settings.WECHATPAY_API_BASE.endswith("/sandbox/wechat/pay")
    response = client.get("/sandbox/wechat/_inbox", {"appid": "wx_none"})
    assert (response.status_code, json.loads(response.content)) == (200, {"appid": "wx_none", "messages": []})
