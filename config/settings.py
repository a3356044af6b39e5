"""Jingzhun settings: from the environment only (see CONTRACT.md, "Environment").

With nothing set the project runs on an embedded default (SQLite, eager Celery, local-memory
cache, WeChat sandbox on). With DATABASE_URL and REDIS_URL it runs for real.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEV_SECRET_KEY = "dev-insecure-jingzhun-secret-key-change-me-0123456789abcdef"  # noqa: S105
# A valid Fernet key, public on purpose: only for the demo and tests.
DEV_FIELD_ENCRYPTION_KEY = "ZGV2LWppbmd6aHVuLWZpZWxkLWtleS0wMDAwMDAwMDA="  # noqa: S105

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY", DEV_FIELD_ENCRYPTION_KEY)

if not DEBUG:
    refused = [
        name
        for name, value, dev in (
            ("SECRET_KEY", SECRET_KEY, DEV_SECRET_KEY),
            ("FIELD_ENCRYPTION_KEY", FIELD_ENCRYPTION_KEY, DEV_FIELD_ENCRYPTION_KEY),
        )
        if not value or dev in value.split(",")
    ]
    if refused:
        raise ImproperlyConfigured(
            "DEBUG is off but " + " and ".join(refused) + " still hold the development value. "
            "Set them in the environment (a Fernet key: "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
        )
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else [])

PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
WECHAT_SANDBOX = env_bool("WECHAT_SANDBOX", DEBUG)
WECHAT_API_BASE = env_str(
    "WECHAT_API_BASE",
    f"{PUBLIC_BASE_URL}/sandbox/wechat" if WECHAT_SANDBOX else "https://api.weixin.qq.com",
).rstrip("/")
WECHATPAY_API_BASE = env_str(
    "WECHATPAY_API_BASE",
    f"{PUBLIC_BASE_URL}/sandbox/wechat/pay" if WECHAT_SANDBOX else "https://api.mch.weixin.qq.com",
).rstrip("/")

INSTALLED_APPS = [
    # tenants first: its `migrate` command (owner credentials) overrides Django's.
    "tenants",
    "catalog",
    "profiles",
    "campaigns",
    "payments",
    "wechat",
    "tenants.ops_site.OpsAdminConfig",  # django.contrib.admin, superusers only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.middleware.TenantContextGuardMiddleware",
    "tenants.middleware.ConsoleTenantMiddleware",
    "tenants.middleware.OpsAuditMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.console",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
# DATABASE_URL is what the web app and the workers use. On PostgreSQL it should be a role that is
# neither superuser nor table owner and has no BYPASSRLS, so Row-Level Security binds it.
# MIGRATION_DATABASE_URL (same host and database, the owner role) is used by `migrate` only.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
MIGRATION_DATABASE_URL = env_str("MIGRATION_DATABASE_URL", "")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Django binds parameters on the client and never prepares; psycopg's default here (None) would
    # also forbid the explicit prepare of tenants.prepared. A threshold nothing reaches allows that
    # one and still prepares nothing else.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1
    # Lets two test runs share one PostgreSQL server without dropping each other's database.
    if env_str("TEST_DATABASE_NAME"):
        DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USING_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

# --- cache, Celery ----------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "jz")}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "jingzhun"}}

# A flash sale's self-claims of one template queue in Redis and commit in batches (see
# campaigns.actions.claim_batches); off, each claim is its own transaction on the stock row.
CLAIM_BATCHING = env_bool("CLAIM_BATCHING", True)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "jingzhun")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {
    # 02:30 in Shanghai, when the shops are closed: every active tenant's profiles, one task each.
    "profiles.recompute-nightly": {"task": "profiles.tasks.recompute_profiles_everywhere",
                                   "schedule": crontab(hour=18, minute=30)},
}

# --- auth, sessions, security -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # The notify and API paths are served behind a TLS-terminating proxy in production.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- language, time, money ----------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Shanghai"
USE_TZ = True

# In development runserver serves static files from the app folders; in production WhiteNoise
# serves what `collectstatic` gathered into STATIC_ROOT (compressed, with hashed names).
if not DEBUG:
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    }
    # No hashed-name manifest: a deployment that has not run collectstatic yet still serves its
    # pages (WhiteNoise then finds the files in the app folders) instead of answering 500 everywhere.
    WHITENOISE_USE_FINDERS = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "EXCEPTION_HANDLER": "tenants.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tenants.negotiation.SoleRendererNegotiation",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Jingzhun Mini Program API",
    "DESCRIPTION": "The API a merchant's WeChat Mini Program calls. Errors: "
    '{"error": {"code", "message", "details"}} with a 4xx status.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI and ReDoc assets served from our own static files: the docs load offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Event batches may commit without waiting for the WAL flush: faster, but a database crash can lose
# the last fraction of a second of acknowledged events. Off unless the operator opts in.
EVENTS_ASYNC_COMMIT = env_bool("EVENTS_ASYNC_COMMIT", False)
# How long an API process may answer from its remembered tenant (suspension reaches it that late).
TENANT_CACHE_SECONDS = env_int("TENANT_CACHE_SECONDS", 5)
MEMBER_TOKEN_TTL_SECONDS = env_int("MEMBER_TOKEN_TTL_SECONDS", 2 * 3600)
MEMBER_REFRESH_TTL_SECONDS = env_int("MEMBER_REFRESH_TTL_SECONDS", 30 * 24 * 3600)

# --- logging: secrets never reach a log line (see tenants.logging) -----------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "tenants.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django logs every 4xx answer as a WARNING: for this API those are expected refusals (a
        # sold-out flash sale answers thousands of 409s a second), and the server's access log has
        # them. Errors (5xx) are still logged; REQUEST_LOG_LEVEL=WARNING brings the 4xx lines back.
        "django.request": {"level": env_str("REQUEST_LOG_LEVEL", "ERROR")},
    },
}
