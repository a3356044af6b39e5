"""Per-tenant WeChat credentials as plain values, for the `wechat` boundary.

The models keep secrets encrypted; these frozen dataclasses are what the WeChat clients and the
sandbox receive. Their ``__repr__`` hides every secret so a traceback or a log line never shows one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MiniProgramCredentials:
    tenant_id: int
    appid: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class PayCredentials:
    tenant_id: int
    mchid: str
    appid: str
    apiv3_key: str = field(repr=False)
    merchant_private_key_pem: str = field(repr=False)
    merchant_cert_serial: str = ""
    # WeChat-side verification material: platform certificates by serial (PEM), and/or the
    # "WeChat Pay public key" with its id PUB_KEY_ID_…; both may be set during a switch-over.
    platform_certs: dict[str, str] = field(default_factory=dict)
    public_key_pem: str = ""
    public_key_id: str = ""
    v2_key: str = field(default="", repr=False)
    notify_token: str = field(default="", repr=False)
