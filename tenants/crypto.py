"""Encryption at rest for secrets (app secrets, Pay keys, phone numbers), keyed by FIELD_ENCRYPTION_KEY.

FIELD_ENCRYPTION_KEY holds one or more comma-separated Fernet keys: the first encrypts, all
decrypt, so keys rotate by prepending a new one and re-saving.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must be comma-separated Fernet keys") from exc


def encrypt(plaintext: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured("a stored secret cannot be decrypted with FIELD_ENCRYPTION_KEY") from exc


def mask_secret(value: str, keep: int = 4) -> str:
    """What the console shows of a secret: that it is set, and its last few characters at most."""
    if not value:
        return ""
    if len(value) <= keep * 3:
        return "••••"
    return "••••" + value[-keep:]


class EncryptedTextField(models.TextField):
    """Stored as a Fernet token; Python code sees the plaintext. Empty stays empty."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
