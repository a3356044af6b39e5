"""WeChat Pay v3 notifications: verify and decrypt what arrives, or build one as WeChat would.

Verification follows WECHAT.md §1.4 steps 1–6 and nothing more: it proves the message came from
WeChat for this merchant and is fresh. Whether it fits an order is the caller's business.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenants.credentials import PayCredentials

from .errors import NotifyDecryptError
from .payv3 import (
    BEIJING,
    SIGNATURE_SCHEME,
    aesgcm_decrypt,
    aesgcm_encrypt,
    check_signed_headers,
    make_nonce,
    sign_response,
)

ENCRYPT_RESOURCE = "encrypt-resource"
ALGORITHM = "AEAD_AES_256_GCM"

SUMMARIES = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
}


@dataclass(frozen=True)
class VerifiedNotification:
    id: str
    event_type: str
    resource_type: str
    summary: str
    create_time: str
    resource: dict[str, Any]
    raw_body: bytes = field(repr=False)
    original_type: str = ""
    serial: str = ""


def verify_notification(
    headers: Mapping[str, str], body: bytes, creds: PayCredentials, now: float | None = None
) -> VerifiedNotification:
    """``body`` must be the raw bytes received (``request.body``), never a re-serialisation.

    Raises NotifySignatureError (answer 401) or NotifyDecryptError (answer 400).
    """
    serial = check_signed_headers(headers, body, creds, now)
    envelope = _parse_object(body, "body")
    if envelope.get("resource_type") != ENCRYPT_RESOURCE:
        raise NotifyDecryptError("bad_resource_type", "resource_type is not encrypt-resource")
    resource = envelope.get("resource")
    if not isinstance(resource, dict):
        raise NotifyDecryptError("bad_body", "resource is missing")
    if resource.get("algorithm") != ALGORITHM:
        raise NotifyDecryptError("bad_algorithm", "algorithm is not AEAD_AES_256_GCM")
    nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
    associated_data = resource.get("associated_data") or ""
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(associated_data, str):
        raise NotifyDecryptError("bad_body", "resource lacks nonce or ciphertext")
    try:
        plaintext = aesgcm_decrypt(creds.apiv3_key, nonce, associated_data, ciphertext)
    except ValueError as exc:
        # Almost always the wrong APIv3 key for this merchant (WECHAT.md §5.12).
        raise NotifyDecryptError("undecryptable", "resource does not decrypt with the APIv3 key") from exc
    return VerifiedNotification(
        id=str(envelope.get("id", "")),
        event_type=str(envelope.get("event_type", "")),
        resource_type=ENCRYPT_RESOURCE,
        summary=str(envelope.get("summary", "")),
        create_time=str(envelope.get("create_time", "")),
        resource=_parse_object(plaintext, "resource"),
        raw_body=body,
        original_type=str(resource.get("original_type", "")),
        serial=serial,
    )


def _parse_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotifyDecryptError("not_json", f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise NotifyDecryptError("not_json", f"{what} is not a JSON object")
    return value


def beijing_now_rfc3339() -> str:
    return datetime.now(BEIJING).isoformat(timespec="seconds")


def compact_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def build_signed_notification(
    platform_private_key_pem: str,
    serial: str,
    apiv3_key: str,
    event_type: str,
    resource: Mapping[str, Any],
    original_type: str,
    timestamp: int | str | None = None,
    nonce: str | None = None,
    notify_id: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as WeChat sends them, for the sandbox and for tests."""
    resource_nonce = make_nonce(12)
    body = compact_json(
        {
            "id": notify_id or str(uuid.uuid4()),
            "create_time": beijing_now_rfc3339(),
            "resource_type": ENCRYPT_RESOURCE,
            "event_type": event_type,
            "summary": SUMMARIES.get(event_type, ""),
            "resource": {
                "original_type": original_type,
                "algorithm": ALGORITHM,
                "ciphertext": aesgcm_encrypt(apiv3_key, resource_nonce, original_type, compact_json(resource)),
                "associated_data": original_type,
                "nonce": resource_nonce,
            },
        }
    )
    return sign_notification_body(platform_private_key_pem, serial, body, timestamp, nonce), body


def sign_notification_body(
    platform_private_key_pem: str,
    serial: str,
    body: bytes,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Fresh headers for a notification body; WeChat's retries re-sign the same body this way."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    header_nonce = nonce or make_nonce()
    return {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Signature": sign_response(platform_private_key_pem, ts, header_nonce, body),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SIGNATURE_SCHEME,
    }
