"""Fixtures for the console, admin and command tests: WeChat Pay key material and tenant snapshots."""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model

from tenants.checks import tenant_owned_models
from tenants.context import tenant_context
from tenants.models import MiniProgramApp, PayAccount, StaffMembership, Tenant


@dataclass(frozen=True)
class PayMaterial:
    private_key_pem: str
    public_key_pem: str
    cert_pem: str
    cert_serial: str
    apiv3_key: str
    v2_key: str


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _certificate(key: rsa.RSAPrivateKey, serial: int) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_pay_material() -> PayMaterial:
    merchant = _private_key()
    platform = _private_key()
    serial = secrets.randbits(120) | (1 << 119)
    return PayMaterial(
        private_key_pem=_pem(merchant),
        public_key_pem=platform.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        cert_pem=_certificate(platform, serial),
        cert_serial=format(serial, "X"),
        apiv3_key=secrets.token_hex(16),
        v2_key=secrets.token_hex(16),
    )


@pytest.fixture(scope="session")
def pay_material() -> PayMaterial:
    return make_pay_material()


@pytest.fixture(scope="session")
def other_pay_material() -> PayMaterial:
    return make_pay_material()


def secret_fragments(secret: str, size: int = 8) -> set[str]:
    """Every ``size``-character piece of a secret; for a PEM, of its base64 body only."""
    lines = [line for line in secret.strip().splitlines() if not line.startswith("-----")]
    body = "".join(lines) if lines else secret
    return {body[i:i + size] for i in range(0, max(len(body) - size + 1, 1))}


def assert_no_secret(html: str, secrets_: dict[str, str]) -> None:
    for name, secret in secrets_.items():
        assert secret not in html, f"{name} appears in full"
        leaked = sorted(piece for piece in secret_fragments(secret) if piece in html)
        assert not leaked, f"pieces of {name} appear: {leaked[:3]}"


def snapshot(tenant: Tenant) -> dict:
    """Everything a tenant holds, to prove a request changed nothing."""
    User = get_user_model()
    data: dict = {
        "tenant": Tenant.objects.filter(pk=tenant.pk).values().get(),
        "staff": list(StaffMembership.objects.filter(tenant=tenant).order_by("pk").values()),
        "users": list(User.objects.filter(memberships__tenant=tenant).order_by("pk")
                      .values("pk", "username", "password", "is_active")),
        "mini_program": list(MiniProgramApp.objects.filter(tenant=tenant).values()),
        "pay_account": list(PayAccount.objects.filter(tenant=tenant).values()),
    }
    with tenant_context(tenant):
        for model in tenant_owned_models():
            data[model._meta.label] = list(model.objects.order_by("pk").values())
    return data


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at full strength costs seconds per user on a busy CI machine; what we test is who may
    # log in and what they may do, not the hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client
    return _login


# --- every console route, found by walking the URL conf ----------------------------------------

import re  # noqa: E402

from django.urls import URLPattern, URLResolver, get_resolver, resolve  # noqa: E402
from django.urls.resolvers import RegexPattern, RoutePattern  # noqa: E402

SAMPLE_BY_CONVERTER = {"int": "1", "uuid": "00000000-0000-4000-8000-000000000001", "slug": "x", "str": "x",
                       "path": "x"}


@dataclass(frozen=True)
class ConsoleRoute:
    name: str
    template: str  # the path with {tenant_slug} left to fill
    kwargs: tuple[str, ...]

    def url(self, tenant_slug: str) -> str:
        return self.template.replace("{tenant_slug}", tenant_slug)


def _fill_route(route: str, kinds: dict[str, str]) -> str:
    def sub(match):
        converter, name = match.group(1) or "str", match.group(2)
        kinds[name] = converter
        return "{tenant_slug}" if name == "tenant_slug" else SAMPLE_BY_CONVERTER.get(converter, "1")
    return re.sub(r"<(?:(\w+):)?(\w+)>", sub, route)


def _fill_regex(regex: str, kinds: dict[str, str]) -> str:
    out, i = [], 0
    regex = regex.lstrip("^").removesuffix("\\Z").removesuffix("$")
    while i < len(regex):
        match = re.match(r"\(\?P<(\w+)>", regex[i:])
        if match is None:
            out.append(regex[i + 1] if regex[i] == "\\" and i + 1 < len(regex) else regex[i])
            i += 2 if regex[i] == "\\" else 1
            continue
        name, depth, j = match.group(1), 1, i + match.end()
        while depth and j < len(regex):
            depth += {"(": 1, ")": -1}.get(regex[j], 0) if regex[j - 1] != "\\" else 0
            j += 1
        body = regex[i + match.end():j - 1]
        kinds[name] = "int" if body in (r"\d+", "[0-9]+") else "str"
        out.append("{tenant_slug}" if name == "tenant_slug" else SAMPLE_BY_CONVERTER[kinds[name]])
        i = j
    return "".join(out)


def console_routes() -> list[ConsoleRoute]:
    """Every route under /console/ that takes ``tenant_slug``, from any app, with sample kwargs."""
    found: list[ConsoleRoute] = []

    def walk(patterns, prefix: str, namespace: str, kinds: dict[str, str]):
        for entry in patterns:
            here = dict(kinds)
            piece = (_fill_route(str(entry.pattern), here) if isinstance(entry.pattern, RoutePattern)
                     else _fill_regex(entry.pattern.regex.pattern, here) if isinstance(entry.pattern, RegexPattern)
                     else str(entry.pattern))
            if isinstance(entry, URLResolver):
                ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, prefix + piece, ns, here)
            elif isinstance(entry, URLPattern):
                path = "/" + prefix + piece
                if path.startswith("/console/") and "tenant_slug" in here:
                    found.append(ConsoleRoute(f"{namespace}{entry.name or entry.lookup_str}", path,
                                              tuple(sorted(here))))

    walk(get_resolver().url_patterns, "", "", {})
    for route in found:  # a sample URL that does not resolve back would test nothing
        match = resolve(route.url("shop-a"))
        assert match.kwargs.get("tenant_slug") == "shop-a", route
    return found
