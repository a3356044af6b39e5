"""Secrets are encrypted at rest, hidden from repr and logs, and keys can rotate."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from tenants import actions, resolvers
from tenants.crypto import decrypt, encrypt, mask_secret
from tenants.logging import RedactSecretsFilter, redact
from tenants.models import MiniProgramApp

pytestmark = pytest.mark.django_db

SECRET = "0123456789abcdef0123456789abcdef"


def test_app_secret_is_ciphertext_in_the_database(tenant_a):
    actions.set_mini_program(tenant_a, appid="wxa0000000000000a1", app_secret=SECRET)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app_secret FROM {MiniProgramApp._meta.db_table} WHERE tenant_id = %s", [tenant_a.pk])
        stored = cursor.fetchone()[0]
    assert SECRET not in stored and SECRET[:8] not in stored
    assert decrypt(stored) == SECRET
    assert resolvers.mini_program_credentials("wxa0000000000000a1").secret == SECRET


def test_blank_secret_keeps_the_stored_one(tenant_a):
    actions.set_mini_program(tenant_a, appid="wxa0000000000000a1", app_secret=SECRET)
    actions.set_mini_program(tenant_a, appid="wxa0000000000000a1", app_secret="")
    assert resolvers.mini_program_credentials("wxa0000000000000a1").secret == SECRET


def test_credentials_repr_never_shows_secrets(tenant_a):
    actions.set_mini_program(tenant_a, appid="wxa0000000000000a1", app_secret=SECRET)
    creds = resolvers.mini_program_credentials("wxa0000000000000a1")
    assert SECRET not in repr(creds) and "wxa0000000000000a1" in repr(creds)


def test_key_rotation_decrypts_old_values(settings):
    old = settings.FIELD_ENCRYPTION_KEY
    token = encrypt(SECRET)
    settings.FIELD_ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},{old}"
    assert decrypt(token) == SECRET
    assert decrypt(encrypt(SECRET)) == SECRET


def test_mask_shows_at_most_the_last_four():
    assert mask_secret(SECRET) == "••••cdef"
    assert mask_secret("short") == "••••"
    assert mask_secret("") == ""


@pytest.mark.parametrize("line", [
    f"calling with secret={SECRET}",
    f'{{"session_key": "{SECRET}"}}',
    f"apiv3_key: {SECRET}",
    f"url ?appid=wx1&secret={SECRET}&js_code=1",
    "-----BEGIN PRIVATE KEY-----\nMIIEv" + SECRET + "\n-----END PRIVATE KEY-----",
])
def test_log_filter_redacts_secrets(line):
    assert SECRET not in redact(line)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (line,), None)
    RedactSecretsFilter().filter(record)
    assert SECRET not in record.getMessage()
