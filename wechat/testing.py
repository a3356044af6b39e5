"""Test support: keys and credentials, and an in-process route from ``requests`` to the sandbox.

``sandbox_transport()`` makes every ``requests`` call whose URL starts with ``WECHAT_API_BASE``,
``WECHATPAY_API_BASE`` or ``PUBLIC_BASE_URL`` go through Django's test handler instead of the
network, so the real clients talk to the sandbox and the sandbox's notifications reach our own
notify views — all inside the test's database transaction. A fixture is three lines::

    @pytest.fixture
    def wechat_sandbox():
        with sandbox_transport() as routed:
            yield routed
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.test import Client
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from tenants.credentials import PayCredentials
from wechat.payv3 import generate_private_key_pem, public_key_pem_of
from wechat.sandbox.platform import platform_key, self_signed_cert_pem

__all__ = [
    "PayKeys",
    "generate_private_key_pem",
    "make_pay_credentials",
    "make_sandbox_pay_credentials",
    "public_key_pem",
    "sandbox_transport",
    "self_signed_cert_pem",
]

# --- keys -----------------------------------------------------------------------------------------


def public_key_pem(private_key_pem: str) -> str:
    return public_key_pem_of(private_key_pem)


@dataclass(frozen=True)
class PayKeys:
    """A merchant key pair plus a WeChat-side key pair, with the credentials that bind them."""

    merchant_private_pem: str
    platform_private_pem: str
    creds: PayCredentials
    platform_serial: str = field(default="")


def make_pay_credentials(
    *,
    tenant_id: int = 1,
    mchid: str = "1900000109",
    appid: str = "wxd678efh567hg6787",
    apiv3_key: str = "a" * 32,
    merchant_private_pem: str | None = None,
    platform_private_pem: str | None = None,
    mode: str = "public_key",
    public_key_id: str = "PUB_KEY_ID_0114232134912410000000000000TEST",
    platform_serial: str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
    v2_key: str = "b" * 32,
) -> PayKeys:
    """``mode``: ``public_key`` (PUB_KEY_ID_…), ``cert`` (platform certificate) or ``both``."""
    merchant = merchant_private_pem or generate_private_key_pem()
    platform = platform_private_pem or generate_private_key_pem()
    use_key = mode in ("public_key", "both")
    use_cert = mode in ("cert", "both")
    creds = PayCredentials(
        tenant_id=tenant_id,
        mchid=mchid,
        appid=appid,
        apiv3_key=apiv3_key,
        merchant_private_key_pem=merchant,
        merchant_cert_serial="3775B6A45ACD588826D15E583A95F5DD00000001",
        platform_certs={platform_serial: self_signed_cert_pem(platform, platform_serial)} if use_cert else {},
        public_key_pem=public_key_pem(platform) if use_key else "",
        public_key_id=public_key_id if use_key else "",
        v2_key=v2_key,
        notify_token=secrets.token_urlsafe(16),
    )
    serial = public_key_id if use_key else platform_serial
    return PayKeys(merchant, platform, creds, serial)


def make_sandbox_pay_credentials(**kwargs: Any) -> PayKeys:
    """Credentials in public-key mode with the sandbox's platform key, like the demo tenants'."""
    key = platform_key()
    return make_pay_credentials(platform_private_pem=key.private_pem, public_key_id=key.public_key_id, **kwargs)


# --- in-process transport ---------------------------------------------------------------------------


def routed_bases() -> list[str]:
    names = ("WECHAT_API_BASE", "WECHATPAY_API_BASE", "PUBLIC_BASE_URL")
    return [getattr(settings, name).rstrip("/") for name in names if getattr(settings, name, "")]


def _matches(url: str, bases: Iterable[str]) -> bool:
    return any(url == base or url.startswith(base + "/") or url.startswith(base + "?") for base in bases)


def dispatch(request: requests.PreparedRequest) -> requests.Response:
    """Serve one prepared ``requests`` request with Django, as the network would have."""
    parts = urlsplit(request.url or "")
    path_with_query = parts.path + (f"?{parts.query}" if parts.query else "")
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    extra: dict[str, Any] = {"RAW_URI": path_with_query}
    content_type = "application/octet-stream"
    for name, value in request.headers.items():
        lname = name.lower()
        if lname == "content-type":
            content_type = value
        elif lname not in ("content-length", "host"):
            extra["HTTP_" + name.upper().replace("-", "_")] = value
    django_response = Client().generic(
        request.method or "GET",
        path_with_query,
        data=body,
        content_type=content_type,
        secure=parts.scheme == "https",
        **extra,
    )
    response = requests.Response()
    response.status_code = django_response.status_code
    response.reason = getattr(django_response, "reason_phrase", "")
    response.headers = CaseInsensitiveDict(dict(django_response.items()))
    response._content = (
        b"".join(django_response.streaming_content) if django_response.streaming else django_response.content
    )
    response.encoding = get_encoding_from_headers(response.headers)
    response.url = request.url or ""
    response.request = request
    return response


@dataclass
class RoutedCalls:
    """What went through the transport, for assertions (method, URL, status)."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)


@contextmanager
def sandbox_transport(bases: Iterable[str] | None = None) -> Iterator[RoutedCalls]:
    """Route ``requests`` for the WeChat bases and our public base into Django, in process.

    Other URLs still go to the network; bases are read when entering, so override settings first.
    """
    prefixes = [b.rstrip("/") for b in (bases if bases is not None else routed_bases())]
    original_send = HTTPAdapter.send
    record = RoutedCalls()

    def send(adapter: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any):
        if not _matches(request.url or "", prefixes):
            return original_send(adapter, request, *args, **kwargs)
        response = dispatch(request)
        response.connection = adapter
        record.calls.append((request.method or "", request.url or "", response.status_code))
        return response

    with mock.patch.object(HTTPAdapter, "send", send):
        yield record
