"""The sandbox's WeChat Pay platform key: created once, shared by every process through files.

Demo tenants are set up in public-key mode with this public key and id, so notifications and
answers signed here verify exactly as WeChat's would. The same key also comes as a self-signed
"platform certificate" (served at ``/v3/certificates``) for tenants in certificate mode.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from django.conf import settings

from wechat.payv3 import generate_private_key_pem, public_key_pem_of

PUBLIC_KEY_ID = "PUB_KEY_ID_0110000000000000000000000000SANDBOX"
CERT_SERIAL = "5A4DB0C000000000000000000000000000000001"
KEY_FILE = "platform_private_key.pem"
CERT_FILE = "platform_cert.pem"
CERT_LIFETIME = dt.timedelta(days=5 * 365)


class PlatformKey(NamedTuple):
    private_pem: str
    public_pem: str
    public_key_id: str
    cert_pem: str
    cert_serial: str


def self_signed_cert_pem(
    private_key_pem: str,
    serial_hex: str,
    common_name: str = "Tenpay.com Root CA",
    lifetime: dt.timedelta = dt.timedelta(days=365),
) -> str:
    """A stand-in platform certificate whose serial number is ``serial_hex``."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(serial_hex, 16))
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + lifetime)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()



def sandbox_dir() -> Path:
    configured = getattr(settings, "WECHAT_SANDBOX_DIR", None)
    return Path(configured) if configured else Path(settings.BASE_DIR) / "var" / "sandbox"


def _ensure_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        # A private key must never be committed, whatever the project's own ignore rules say.
        ignore.write_text("*\n")


def _load_or_create(path: Path, make: Callable[[], str]) -> str:
    if path.exists():
        return path.read_text()
    _ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".new-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
        os.chmod(tmp, 0o600)
        try:
            # link() refuses to overwrite: when two processes race, both end up with the winner's key.
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path.read_text()


@lru_cache(maxsize=4)
def _platform_key(directory: str) -> PlatformKey:
    private_pem = _load_or_create(Path(directory) / KEY_FILE, generate_private_key_pem)
    cert_pem = _load_or_create(
        Path(directory) / CERT_FILE, lambda: self_signed_cert_pem(private_pem, CERT_SERIAL, lifetime=CERT_LIFETIME)
    )
    return PlatformKey(private_pem, public_key_pem_of(private_pem), PUBLIC_KEY_ID, cert_pem, CERT_SERIAL)


def platform_key() -> PlatformKey:
    return _platform_key(str(sandbox_dir()))
