"""Checks that WeChat Pay key material is what it claims to be, before it is stored.

A merchant pasting the APIv3 key into the v2 field, or a certificate where the private key goes,
is the commonest setup mistake (WECHAT.md §5.12); say so in words instead of failing at payment time.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

SERIAL_RE = re.compile(r"^[0-9A-Fa-f]{8,64}$")


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValidationError(_("商户 API 私钥无法读取：需要 apiclient_key.pem 的 PEM 内容（PKCS#8）。"),
                              code="bad_private_key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValidationError(_("商户 API 私钥应为 2048 位或更长的 RSA 私钥。"), code="bad_private_key")
    return key


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ValidationError(_("微信支付公钥无法读取：需要 pub_key.pem 的 PEM 内容。"), code="bad_public_key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValidationError(_("微信支付公钥应为 RSA 公钥。"), code="bad_public_key")
    return key


def load_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ValidationError(_("平台证书无法读取：需要 PEM 格式的证书。"), code="bad_certificate") from None


def certificate_serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "X")


def validate_pay_material(*, apiv3_key: str, merchant_private_key: str, merchant_cert_serial: str,
                          public_key_pem: str, public_key_id: str, platform_certs: dict, v2_key: str) -> None:
    errors: list[ValidationError] = []

    def check(fn):
        try:
            fn()
        except ValidationError as exc:
            errors.append(exc)

    if apiv3_key and len(apiv3_key.encode()) != 32:
        errors.append(ValidationError(_("APIv3 密钥应为 32 个字符。"), code="bad_apiv3_key"))
    if v2_key and len(v2_key.encode()) != 32:
        errors.append(ValidationError(_("APIv2 密钥应为 32 个字符。"), code="bad_v2_key"))
    if merchant_private_key:
        check(lambda: load_private_key(merchant_private_key))
    if merchant_cert_serial and not SERIAL_RE.match(merchant_cert_serial):
        errors.append(ValidationError(_("商户证书序列号应为十六进制字符串。"), code="bad_serial"))
    if public_key_pem:
        check(lambda: load_public_key(public_key_pem))
        if not public_key_id.startswith("PUB_KEY_ID_"):
            errors.append(ValidationError(_("微信支付公钥 ID 应以 PUB_KEY_ID_ 开头。"), code="bad_public_key_id"))
    elif public_key_id:
        errors.append(ValidationError(_("填写了公钥 ID，但没有微信支付公钥。"), code="public_key_missing"))
    for serial, pem in (platform_certs or {}).items():
        def check_cert(serial=serial, pem=pem):
            cert = load_certificate(pem)
            if certificate_serial(cert).upper() != serial.upper():
                raise ValidationError(_("平台证书序列号与证书内容不符：%(s)s") % {"s": serial}, code="serial_mismatch")
        check(check_cert)
    if errors:
        raise ValidationError(errors)
