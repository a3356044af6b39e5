"""WeChat Pay API v3: request signing, signature checks, AES-256-GCM, and a small client.

Why our own client instead of ``wechatpayv3``: in certificate mode its constructor downloads
``/v3/certificates`` (network inside ``__init__``), it never checks the freshness of a signed
timestamp, and its base URL is a private attribute reset in ``__init__``. The algorithms are small,
and owning them lets each tenant carry its own keys and lets the sandbox stand in for WeChat.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from tenants.credentials import PayCredentials

from .errors import NotifySignatureError, WeChatPayError, WeChatUnavailable

logger = logging.getLogger(__name__)

SIGNATURE_SCHEME = "WECHATPAY2-SHA256-RSA2048"
PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
MAX_CLOCK_SKEW_S = 300
DEFAULT_API_BASE = "https://api.mch.weixin.qq.com"
USER_AGENT = "Jingzhun/0.1 (+python-requests)"
BEIJING = ZoneInfo("Asia/Shanghai")
SIGNED_HEADERS = ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature", "wechatpay-serial")

_NONCE_ALPHABET = string.ascii_uppercase + string.digits
_AUTH_PAIR = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


# --- keys -----------------------------------------------------------------------------------------


def make_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


@lru_cache(maxsize=128)
def load_private_key(private_key_pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("WeChat Pay keys are RSA keys")
    return key


@lru_cache(maxsize=256)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """Accept either a public key PEM or an X.509 certificate PEM (a platform certificate)."""
    data = pem.encode()
    if b"BEGIN CERTIFICATE" in data:
        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("WeChat Pay keys are RSA keys")
    return key


def generate_private_key_pem(bits: int = 2048) -> str:
    """A PKCS#8 RSA key, the format of ``apiclient_key.pem`` (for the sandbox and tests)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem_of(private_key_pem: str) -> str:
    public = load_private_key(private_key_pem).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


# --- signatures -----------------------------------------------------------------------------------


def sign_message(private_key_pem: str, message: str) -> str:
    signature = load_private_key(private_key_pem).sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def request_message(method: str, path_with_query: str, timestamp: str, nonce: str, body: str) -> str:
    return f"{method.upper()}\n{path_with_query}\n{timestamp}\n{nonce}\n{body}\n"


def build_authorization(
    mchid: str,
    serial: str,
    private_key_pem: str,
    method: str,
    path_with_query: str,
    body: str,
    timestamp: str | int | None = None,
    nonce: str | None = None,
) -> str:
    # Seconds, never milliseconds: a 13-digit timestamp is the classic cause of SIGN_ERROR.
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or make_nonce()
    signature = sign_message(private_key_pem, request_message(method, path_with_query, ts, nonce, body))
    return (
        f'{SIGNATURE_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{ts}",serial_no="{serial}"'
    )


def parse_authorization(header: str) -> dict[str, str] | None:
    """The five ``k="v"`` pairs of a merchant ``Authorization`` header, or None if malformed."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SIGNATURE_SCHEME:
        return None
    pairs: dict[str, str] = {}
    for part in rest.split(","):
        match = _AUTH_PAIR.fullmatch(part)
        if match is None:
            return None
        pairs[match.group(1)] = match.group(2)
    if not {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} <= pairs.keys():
        return None
    return pairs


def signed_message_bytes(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def sign_response(private_key_pem: str, timestamp: str, nonce: str, body: bytes) -> str:
    """What WeChat does to its answers and notifications (used by the sandbox and tests)."""
    signature = load_private_key(private_key_pem).sign(
        signed_message_bytes(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256()
    )
    return base64.b64encode(signature).decode()


def verify_wechatpay_signature(
    public_key: rsa.RSAPublicKey | str, timestamp: str, nonce: str, body: bytes, signature_b64: str
) -> bool:
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, signed_message_bytes(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def verify_request_signature(public_key: rsa.RSAPublicKey | str, message: str, signature_b64: str) -> bool:
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --- AES-256-GCM ----------------------------------------------------------------------------------


def _aes_key(apiv3_key: str) -> bytes:
    key = apiv3_key.encode()
    if len(key) != 32:
        raise ValueError("the APIv3 key must be 32 bytes")
    return key


def aesgcm_decrypt(apiv3_key: str, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    """Raises ValueError for any failure (bad base64, wrong key, tampered data)."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        return AESGCM(_aes_key(apiv3_key)).decrypt(nonce.encode(), data, associated_data.encode())
    except (InvalidTag, binascii.Error) as exc:
        raise ValueError("AES-GCM decryption failed") from exc


def aesgcm_encrypt(apiv3_key: str, nonce: str, associated_data: str, plaintext: bytes) -> str:
    data = AESGCM(_aes_key(apiv3_key)).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return base64.b64encode(data).decode()


# --- mini-program payment parameters --------------------------------------------------------------


def jsapi_pay_params(
    appid: str,
    prepay_id: str,
    private_key_pem: str,
    timestamp: str | int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """What ``wx.requestPayment`` needs; ``appid`` must be the one used at prepay."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or make_nonce()
    package = f"prepay_id={prepay_id}"
    pay_sign = sign_message(private_key_pem, f"{appid}\n{ts}\n{nonce}\n{package}\n")
    return {
        "appId": appid,
        "timeStamp": ts,
        "nonceStr": nonce,
        "package": package,
        "signType": "RSA",
        "paySign": pay_sign,
    }


# --- verifying WeChat's signed messages (answers and notifications) -------------------------------


def normalize_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case names; also accepts Django ``request.META`` (``HTTP_WECHATPAY_SERIAL``)."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(value, str):
            continue
        key = name.lower()
        if key.startswith("http_"):
            key = key[5:].replace("_", "-")
        out[key] = value
    return out


def verification_key(creds: PayCredentials, serial: str) -> rsa.RSAPublicKey | None:
    """The WeChat-side key named by ``Wechatpay-Serial``, or None if this tenant has none."""
    if serial.startswith(PUBLIC_KEY_ID_PREFIX):
        if creds.public_key_pem and hmac.compare_digest(serial, creds.public_key_id):
            return load_public_key(creds.public_key_pem)
        return None
    wanted = serial.upper()
    for cert_serial, cert_pem in creds.platform_certs.items():
        if cert_serial.upper() == wanted:
            return load_public_key(cert_pem)
    return None


def check_signed_headers(
    headers: Mapping[str, str], body: bytes, creds: PayCredentials, now: float | None = None
) -> str:
    """WECHAT.md §1.4 steps 2–5; returns the serial that verified, raises NotifySignatureError."""
    h = normalize_headers(headers)
    missing = [name for name in SIGNED_HEADERS if not h.get(name)]
    if missing:
        raise NotifySignatureError("missing_header", f"missing header(s): {', '.join(missing)}")
    timestamp, nonce = h["wechatpay-timestamp"], h["wechatpay-nonce"]
    signature, serial = h["wechatpay-signature"], h["wechatpay-serial"]
    if signature.startswith(PROBE_PREFIX):
        # WeChat checks that we verify; an expected failure, so no warning and no body in the log.
        logger.info("WeChat Pay signature probe rejected (serial %s)", serial)
        raise NotifySignatureError("signature_probe", "signature probe")
    signature_type = h.get("wechatpay-signature-type")
    if signature_type and signature_type != SIGNATURE_SCHEME:
        raise NotifySignatureError("bad_signature_type", f"unsupported signature type {signature_type}")
    if not timestamp.isdigit():
        raise NotifySignatureError("bad_timestamp", "Wechatpay-Timestamp is not unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAX_CLOCK_SKEW_S:
        raise NotifySignatureError("stale_timestamp", "Wechatpay-Timestamp is more than 5 minutes off")
    key = verification_key(creds, serial)
    if key is None:
        raise NotifySignatureError("unknown_serial", f"no WeChat Pay key with serial {serial}")
    if not verify_wechatpay_signature(key, timestamp, nonce, body, signature):
        raise NotifySignatureError("bad_signature", "signature does not verify")
    return serial


# --- client ---------------------------------------------------------------------------------------


def format_time_expire(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("time_expire must be an aware datetime")
    return value.astimezone(BEIJING).isoformat(timespec="seconds")


def _segment(value: str) -> str:
    # Quote ourselves (and sign what we send): requests would turn "|" into %7C after signing.
    return quote(value, safe="*")


class PayV3Client:
    """One tenant's WeChat Pay account. Every 2xx answer's signature is verified (fail closed)."""

    def __init__(
        self,
        creds: PayCredentials,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = (3.05, 10),
        session: requests.Session | None = None,
    ) -> None:
        self.creds = creds
        self.base_url = (base_url or getattr(settings, "WECHATPAY_API_BASE", DEFAULT_API_BASE)).rstrip("/")
        self.timeout = timeout
        self._http = session or requests.Session()

    # transactions

    def jsapi_prepay(
        self,
        out_trade_no: str,
        description: str,
        total_fen: int,
        openid: str,
        notify_url: str,
        time_expire: datetime | str | None = None,
        attach: str | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "appid": self.creds.appid,
            "mchid": self.creds.mchid,
            "description": description,
            "out_trade_no": out_trade_no,
            "notify_url": notify_url,
            "amount": {"total": total_fen, "currency": "CNY"},
            "payer": {"openid": openid},
        }
        if time_expire is not None:
            body["time_expire"] = format_time_expire(time_expire)
        if attach is not None:
            body["attach"] = attach
        data = self._call("POST", "/v3/pay/transactions/jsapi", body=body)
        prepay_id = data.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WeChatUnavailable("WeChat Pay answered without a prepay_id")
        return prepay_id

    def pay_params(self, prepay_id: str) -> dict[str, str]:
        return jsapi_pay_params(self.creds.appid, prepay_id, self.creds.merchant_private_key_pem)

    def query_by_out_trade_no(self, out_trade_no: str) -> dict[str, Any]:
        path = f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}"
        return self._call("GET", path, query={"mchid": self.creds.mchid})

    def query_by_transaction_id(self, transaction_id: str) -> dict[str, Any]:
        path = f"/v3/pay/transactions/id/{_segment(transaction_id)}"
        return self._call("GET", path, query={"mchid": self.creds.mchid})

    def close(self, out_trade_no: str) -> None:
        path = f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}/close"
        self._call("POST", path, body={"mchid": self.creds.mchid})

    # refunds

    def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str | None = None,
        notify_url: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        if reason:
            body["reason"] = reason
        if notify_url:
            body["notify_url"] = notify_url
        return self._call("POST", "/v3/refund/domestic/refunds", body=body)

    def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        return self._call("GET", f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}")

    # platform certificates

    def certificates(self) -> dict[str, str]:
        """Download the platform certificates (serial -> PEM) for a merchant in certificate mode.

        Each certificate is AEAD-encrypted with our APIv3 key, which proves it comes from WeChat;
        the answer's signature is then checked with the certificates it carries. Merchants that
        joined after ~2024-09 get a 5xx here: they are in public-key mode only.
        """
        path = "/v3/certificates"
        response = self._send("GET", self.base_url + path, urlsplit(self.base_url).path + path, "")
        if not 200 <= response.status_code < 300:
            self._raise_for_error(response)
        try:
            items = json.loads(response.content)["data"]
            certs = {
                str(item["serial_no"]): aesgcm_decrypt(
                    self.creds.apiv3_key,
                    item["encrypt_certificate"]["nonce"],
                    item["encrypt_certificate"]["associated_data"],
                    item["encrypt_certificate"]["ciphertext"],
                ).decode()
                for item in items
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise WeChatUnavailable("unreadable /v3/certificates answer") from exc
        known = replace(self.creds, platform_certs={**self.creds.platform_certs, **certs})
        try:
            check_signed_headers(response.headers, response.content, known)
        except NotifySignatureError as exc:
            raise WeChatUnavailable(f"unverifiable WeChat Pay answer ({exc.reason_code})") from exc
        return certs

    # bills

    def trade_bill(self, bill_date: date | str, bill_type: str = "ALL") -> dict[str, Any]:
        day = bill_date.isoformat() if isinstance(bill_date, date) else bill_date
        return self._call("GET", "/v3/bill/tradebill", query={"bill_date": day, "bill_type": bill_type})

    def download_bill(self, url: str, expected_sha1: str | None = None) -> bytes:
        """The download answer is unsigned; ``expected_sha1`` (the bill's ``hash_value``) guards it."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = self._send("GET", url, path, "")
        if response.status_code != 200:
            self._raise_for_error(response)
        if expected_sha1 is not None:
            digest = hashlib.sha1(response.content, usedforsecurity=False).hexdigest()
            if not hmac.compare_digest(digest.lower(), expected_sha1.lower()):
                raise WeChatUnavailable("downloaded bill does not match its hash_value")
        return response.content

    # plumbing

    def _call(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None, query: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        suffix = path + (f"?{urlencode(query)}" if query else "")
        # The signed path is everything after the host, so a base URL with a prefix (the sandbox) counts.
        signed_path = urlsplit(self.base_url).path + suffix
        text = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        response = self._send(method, self.base_url + suffix, signed_path, text)
        if not 200 <= response.status_code < 300:
            self._raise_for_error(response)
        try:
            check_signed_headers(response.headers, response.content, self.creds)
        except NotifySignatureError as exc:
            raise WeChatUnavailable(f"unverifiable WeChat Pay answer ({exc.reason_code})") from exc
        if response.status_code == 204 or not response.content:
            return {}
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise WeChatUnavailable("WeChat Pay answered with something other than JSON") from exc
        if not isinstance(data, dict):
            raise WeChatUnavailable("WeChat Pay answered with something other than an object")
        return data

    def _send(self, method: str, url: str, signed_path: str, body: str) -> requests.Response:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Authorization": build_authorization(
                self.creds.mchid,
                self.creds.merchant_cert_serial,
                self.creds.merchant_private_key_pem,
                method,
                signed_path,
                body,
            ),
        }
        if self.creds.public_key_id:
            headers["Wechatpay-Serial"] = self.creds.public_key_id
        try:
            return self._http.request(
                method, url, data=body.encode() if body else None, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise WeChatUnavailable(f"WeChat Pay unreachable: {type(exc).__name__}") from exc

    @staticmethod
    def _raise_for_error(response: requests.Response) -> None:
        code, message = "", ""
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            code, message = str(data.get("code", "")), str(data.get("message", ""))
        if response.status_code >= 500 or response.status_code < 400:
            raise WeChatUnavailable(f"WeChat Pay answered {response.status_code} {code}".rstrip())
        raise WeChatPayError(response.status_code, code, message)
