"""WeChat Pay API v2 (legacy tenants): signatures, safe XML, encrypted refund notifications.

wechatpy 1.8.18 only checks MD5 signatures and lets decrypt errors escape as UnicodeDecodeError,
so the parts that guard money are done here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET  # noqa: S405 - DTDs are refused before parsing, see parse_xml
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import PayV2DataError

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)

_FORBIDDEN_XML = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_MAX_XML_BYTES = 256 * 1024


def _is_empty(value: Any) -> bool:
    return value is None or value == ""


def sign_string(fields: Mapping[str, Any], key: str) -> str:
    pairs = [f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and not _is_empty(fields[k])]
    return "&".join(pairs) + f"&key={key}"


def sign(fields: Mapping[str, Any], key: str, sign_type: str = MD5) -> str:
    """Sign over every non-empty field received or sent: WeChat adds fields over time."""
    message = sign_string(fields, key).encode()
    if sign_type == MD5:
        # MD5 is WeChat's protocol here, not our choice.
        return hashlib.md5(message, usedforsecurity=False).hexdigest().upper()
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode(), message, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"unknown v2 sign_type {sign_type!r}")


def verify(fields: Mapping[str, Any], key: str, preferred_sign_type: str = MD5) -> bool:
    """Use the message's own ``sign_type`` if present; else the order's type, then MD5.

    Notifies often omit ``sign_type`` even for HMAC-SHA256 orders, and some arrive MD5-signed.
    """
    received = fields.get("sign")
    if not isinstance(received, str) or not received:
        return False
    declared = fields.get("sign_type")
    if declared:
        candidates: tuple[str, ...] = (declared,) if declared in SIGN_TYPES else ()
    else:
        candidates = tuple(dict.fromkeys((preferred_sign_type, MD5)))
    expected_values = [sign(fields, key, sign_type) for sign_type in candidates]
    # Compare against every candidate so timing does not reveal which one matched.
    matches = [hmac.compare_digest(expected, received.upper()) for expected in expected_values]
    return any(matches)


def parse_xml(data: bytes | str) -> dict[str, str]:
    """A flat ``<xml><k>v</k>…</xml>`` document as a dict; DTDs and entities are refused (XXE, bombs)."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > _MAX_XML_BYTES:
        raise PayV2DataError("XML document too large")
    if _FORBIDDEN_XML.search(raw):
        raise PayV2DataError("XML with a DTD or entity declaration is refused")
    try:
        root = ET.fromstring(raw)  # noqa: S314 - no DTD can reach this line
    except ET.ParseError as exc:
        raise PayV2DataError("malformed XML") from exc
    return {child.tag: (child.text or "") for child in root}


def _xml_value(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if "]]>" in text:
        return escape(text)
    return f"<![CDATA[{text}]]>"


def to_xml(fields: Mapping[str, Any]) -> str:
    body = "".join(f"<{k}>{_xml_value(v)}</{k}>" for k, v in fields.items() if v is not None)
    return f"<xml>{body}</xml>"


def reply_xml(success: bool, msg: str = "OK") -> str:
    """The answer to a v2 notify; a FAIL asks WeChat to retry."""
    return to_xml({"return_code": "SUCCESS" if success else "FAIL", "return_msg": msg})


def _req_info_cipher(v2_key: str) -> Cipher:
    # WeChat's format: AES-256-ECB keyed by the ASCII of lower-case hex md5(API key).
    key = hashlib.md5(v2_key.encode(), usedforsecurity=False).hexdigest().lower().encode()
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - mandated by WeChat's refund notify


def decrypt_refund_req_info(req_info_b64: str, v2_key: str) -> dict[str, str]:
    """Decrypt a refund notify's ``req_info``; any failure is a PayV2DataError."""
    try:
        data = base64.b64decode(req_info_b64, validate=True)
        decryptor = _req_info_cipher(v2_key).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = sym_padding.PKCS7(128).unpadder()
        plaintext = unpadder.update(padded) + unpadder.finalize()
        text = plaintext.decode("utf-8")
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise PayV2DataError("req_info does not decrypt with this merchant's v2 key") from exc
    return parse_xml(text)


def encrypt_refund_req_info(fields: Mapping[str, Any], v2_key: str) -> str:
    body = "".join(f"<{k}>{_xml_value(v)}</{k}>" for k, v in fields.items())
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(f"<root>{body}</root>".encode()) + padder.finalize()
    encryptor = _req_info_cipher(v2_key).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
