"""Settings from the environment: production refuses development secrets, passes the deploy checks,
and the project reads nothing from outside its own folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.utils import translation

BASE_DIR = Path(settings.BASE_DIR)
REAL_SECRET_KEY = "prod-" + "k3y-" * 15  # 65 characters, not the development value


def manage(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a fresh process with only the environment we give it (plus PATH)."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
             "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}", **env}
    return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=tmp_path, env=clean,  # noqa: S603
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("env", "refused"), [
    ({}, "SECRET_KEY and FIELD_ENCRYPTION_KEY"),
    ({"SECRET_KEY": REAL_SECRET_KEY}, "FIELD_ENCRYPTION_KEY"),
    ({"FIELD_ENCRYPTION_KEY": "fernet"}, "SECRET_KEY"),
])
def test_debug_off_refuses_development_secrets_with_a_clear_message(tmp_path, env, refused):
    if "FIELD_ENCRYPTION_KEY" in env:
        env["FIELD_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    result = manage("check", tmp_path=tmp_path, DEBUG="0", **env)
    assert result.returncode != 0
    assert f"DEBUG is off but {refused} still hold the development value." in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_debug_off_refuses_a_short_secret_key(tmp_path):
    result = manage("check", tmp_path=tmp_path, DEBUG="0", SECRET_KEY="short-but-not-the-dev-one",
                    FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode())
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 50 characters when DEBUG is off." in result.stderr


def test_deploy_check_is_clean_with_real_secrets(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path, DEBUG="0",
                    SECRET_KEY=REAL_SECRET_KEY, FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
                    ALLOWED_HOSTS="jingzhun.example.com", PUBLIC_BASE_URL="https://jingzhun.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_development_defaults_run_with_nothing_set(tmp_path):
    result = manage("check", tmp_path=tmp_path, WECHAT_SANDBOX="0")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


# --- nothing from outside the repository -------------------------------------------------------

def _configured_paths() -> list[Path]:
    paths = [Path(p) for engine in settings.TEMPLATES for p in engine.get("DIRS", [])]
    paths += [Path(p if isinstance(p, str | Path) else p[1]) for p in settings.STATICFILES_DIRS]
    paths += [Path(p) for p in settings.LOCALE_PATHS]
    return paths


def test_templates_static_and_locale_live_in_the_repository():
    paths = _configured_paths()
    assert len(paths) >= 3
    for path in paths:
        assert path.resolve().is_relative_to(BASE_DIR.resolve()), path
        assert path.is_dir(), path
    assert (BASE_DIR / "static" / "console" / "console.css").is_file()


def test_console_pages_load_no_asset_from_another_host(client, owner_a):
    client.force_login(owner_a)
    html = client.get("/console/shop-a/settings/").content.decode() + client.get("/console/login/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:css|js|woff2?|png|svg))"', html)
    assert assets, "the console links its stylesheet"
    assert all(asset.startswith("/static/") for asset in assets), assets


# --- translations: the compiled catalogue is in the repository and matches its source -----------

def _po_entries(path: Path) -> dict[tuple[str | None, str], str]:
    """msgctxt/msgid → msgstr (first form) of a .po file; enough of the format for our catalogue."""
    entries, current, field = {}, {}, None

    def flush():
        if current.get("msgid"):
            entries[(current.get("msgctxt"), current["msgid"])] = current.get("msgstr", "")

    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            flush()
            current, field = {}, None
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[0\])?|msgstr\[\d+\]) "(.*)"$', line)
        if match:
            field = match.group(1).replace("[0]", "") if match.group(1) != "msgid_plural" else None
            if field and field.startswith("msgstr["):
                field = None
            if field:
                current[field] = match.group(2)
        elif field and line.startswith('"'):
            current[field] += line[1:-1]
    unescape = {r"\"": '"', r"\n": "\n", r"\\": "\\"}
    return {(ctx, re.sub(r'\\[\\"n]', lambda m: unescape[m.group(0)], msgid)):
            re.sub(r'\\[\\"n]', lambda m: unescape[m.group(0)], msgstr)
            for (ctx, msgid), msgstr in entries.items()}


def test_every_english_translation_is_compiled():
    po = BASE_DIR / "locale" / "en" / "LC_MESSAGES" / "django.po"
    assert (BASE_DIR / "locale" / "en" / "LC_MESSAGES" / "django.mo").is_file()
    entries = _po_entries(po)
    assert len(entries) > 100
    stale = []
    with translation.override("en"):
        for (ctx, msgid), msgstr in entries.items():
            if not msgstr:
                continue
            got = translation.pgettext(ctx, msgid) if ctx else translation.gettext(msgid)
            if got != msgstr:
                stale.append(msgid)
    assert stale == [], "run `make messages` (compilemessages) and commit the .mo"


@pytest.mark.parametrize(("source", "english"), [
    ("会员", "Members"), ("设置", "Settings"), ("商户至少要保留一位有效的所有者。",
                                             "A merchant must keep at least one active owner.")])
def test_chinese_by_default_english_on_request(source, english):
    with translation.override("zh-hans"):
        assert translation.gettext(source) == source
    with translation.override("en"):
        assert translation.gettext(source) == english
