"""The sandbox's WeChat Pay platform key: created once, shared by every process through a file.

Demo tenants are set up in public-key mode with this public key and id, so notifications and
answers signed here verify exactly as WeChat's would.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from django.conf import settings

from wechat.payv3 import generate_private_key_pem, public_key_pem_of

PUBLIC_KEY_ID = "PUB_KEY_ID_0110000000000000000000000000SANDBOX"
KEY_FILE = "platform_private_key.pem"


class PlatformKey(NamedTuple):
    private_pem: str
    public_pem: str
    public_key_id: str


def sandbox_dir() -> Path:
    configured = getattr(settings, "WECHAT_SANDBOX_DIR", None)
    return Path(configured) if configured else Path(settings.BASE_DIR) / "var" / "sandbox"


def _ensure_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        # A private key must never be committed, whatever the project's own ignore rules say.
        ignore.write_text("*\n")


def _load_or_create(path: Path) -> str:
    if path.exists():
        return path.read_text()
    _ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_private_key_pem())
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
    private_pem = _load_or_create(Path(directory) / KEY_FILE)
    return PlatformKey(private_pem, public_key_pem_of(private_pem), PUBLIC_KEY_ID)


def platform_key() -> PlatformKey:
    return _platform_key(str(sandbox_dir()))
