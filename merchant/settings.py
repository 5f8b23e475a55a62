"""Settings, all read from the environment (django-environ).

Every variable is listed in `.env.example` and in the README. With nothing
set, the service runs on embedded defaults that need no server: SQLite under
`var/`, Celery over kombu's filesystem transport under `var/`, and the sandbox
gateway mounted in the same server.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Real environment variables win over both files (read_env only sets what is missing).
environ.Env.read_env(BASE_DIR / ".env")
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
# Written by `make run` on first start: a generated secret key and sandbox credentials.
environ.Env.read_env(VAR_DIR / "dev.env")

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# Production refuses to start without it (payments.checks); development gets a
# per-process key unless `make run` generated a lasting one in var/dev.env.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or (get_random_secret_key() if DEBUG else "")

HOST = env.str("HOST", default="127.0.0.1")
PORT = env.int("PORT", default=8000)
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=f"http://{HOST}:{PORT}").rstrip("/")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", HOST])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "payments",
    "sandbox",
    "demo_shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "merchant.urls"
WSGI_APPLICATION = "merchant.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server, the worker and beat read while one writes;
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue
        # (up to `timeout` seconds) instead of failing with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory: worker processes started by the tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # A request waiting on a locked row gives up (and an IPN is answered 503, so the
    # gateway retries) well before gunicorn's 60 s timeout kills the worker.
    lock_timeout_ms = env.int("DATABASE_LOCK_TIMEOUT_MS", default=10_000)
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("options", f"-c lock_timeout={lock_timeout_ms}")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files straight from the apps in development (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # One folder for both directions: producers write where the worker reads.
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}

# --- The gateway and the sandbox ------------------------------------------
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
GATEWAY_API_URL = env.str("GATEWAY_API_URL", default=f"{PUBLIC_BASE_URL}/sandbox/api/")
GATEWAY_PAYMENT_HOST = env.str("GATEWAY_PAYMENT_HOST", default=f"{PUBLIC_BASE_URL}/sandbox").rstrip(
    "/"
)
GATEWAY_API_KEY = env.str("GATEWAY_API_KEY", default="")
GATEWAY_API_SECRET = env.str("GATEWAY_API_SECRET", default="")
GATEWAY_CONNECT_TIMEOUT = env.float("GATEWAY_CONNECT_TIMEOUT", default=3.05)
GATEWAY_READ_TIMEOUT = env.float("GATEWAY_READ_TIMEOUT", default=15.0)
GATEWAY_USER_AGENT = env.str(
    "GATEWAY_USER_AGENT", default="merchant-payments/0.1 (+python-requests)"
)
# A private call rejected for a stale nonce (another process's call overtook
# it) is re-signed with a fresh nonce this many times before giving up.
GATEWAY_NONCE_RETRIES = env.int("GATEWAY_NONCE_RETRIES", default=12)
# The gateway caches public methods for 10 s and drops clients that poll faster.
GATEWAY_PUBLIC_CACHE_SECONDS = env.int("GATEWAY_PUBLIC_CACHE_SECONDS", default=10)

# --- Orders -------------------------------------------------------------------
# Seconds an order waits for payment before it expires.
PAYMENTS_ORDER_TTL = env.int("PAYMENTS_ORDER_TTL", default=3600)
# Seconds an order may stay `confirming` before it is flagged for a person.
PAYMENTS_CONFIRMING_TTL = env.int("PAYMENTS_CONFIRMING_TTL", default=24 * 3600)
# How far short of its quote a fiat order's BTC payment may fall and still pay it
# (a fraction: 0.005 = 0.5 %), and how far over before it is flagged `overpaid`.
try:
    PAYMENTS_UNDERPAID_TOLERANCE = Decimal(env.str("PAYMENTS_UNDERPAID_TOLERANCE", default="0.005"))
except InvalidOperation:  # not a number: check payments.E006 says so, by name
    PAYMENTS_UNDERPAID_TOLERANCE = Decimal("NaN")
# Seconds a fiat order's quote holds: money sent later is not checked against a rate that
# may have moved since; the order is flagged `quote_expired` for a person instead of paid.
PAYMENTS_QUOTE_WINDOW = env.int("PAYMENTS_QUOTE_WINDOW", default=PAYMENTS_ORDER_TTL)
# Where the shop's return URLs may point (no open redirects): a host (`shop.example`,
# any http(s) URL on it) or an origin (`https://shop.example:8443`, that scheme and
# port only). The service's own host is always allowed.
PAYMENTS_RETURN_HOSTS = env.list("PAYMENTS_RETURN_HOSTS", default=[])
# The demo shop at / (development).
DEMO_SHOP_ENABLED = env.bool("DEMO_SHOP_ENABLED", default=DEBUG)

# BTC price of each currency in the sandbox, as decimal strings ("USD=12.50000,EUR=9.80000").
SANDBOX_RATES = env.dict("SANDBOX_RATES", default={})
# The gateway re-sends an IPN that was not answered "[OK]" every 30 minutes.
SANDBOX_IPN_RETRY_SECONDS = env.int("SANDBOX_IPN_RETRY_SECONDS", default=1800)
SANDBOX_IPN_TIMEOUT = env.float("SANDBOX_IPN_TIMEOUT", default=10.0)
# A delivery whose retry was lost (worker died) is re-sent by a sweep after this grace.
SANDBOX_IPN_SWEEP_GRACE_SECONDS = env.int("SANDBOX_IPN_SWEEP_GRACE_SECONDS", default=300)
SANDBOX_MERCHANT_LOGIN = env.str("SANDBOX_MERCHANT_LOGIN", default="sandbox-merchant")
if SANDBOX_ENABLED:
    CELERY_BEAT_SCHEDULE["sandbox-redeliver-due-ipns"] = {
        "task": "sandbox.tasks.redeliver_due_ipns",
        "schedule": 300.0,
    }

# --- Shop webhooks --------------------------------------------------------------
# When set, every order change is POSTed there as signed JSON (README: Shop webhooks).
SHOP_WEBHOOK_URL = env.str("SHOP_WEBHOOK_URL", default="")
# HMAC-SHA256 key of the Merchant-Signature header; required when the URL is set.
SHOP_WEBHOOK_SECRET = env.str("SHOP_WEBHOOK_SECRET", default="")
# Seconds to wait for the shop's answer (connect and read, each).
SHOP_WEBHOOK_TIMEOUT = env.float("SHOP_WEBHOOK_TIMEOUT", default=10.0)
# Failed deliveries are retried with exponential backoff for this long, then given up.
SHOP_WEBHOOK_RETRY_HOURS = env.float("SHOP_WEBHOOK_RETRY_HOURS", default=24.0)
# Safety net: enqueue events whose delivery or retry was lost (broker down, worker died).
CELERY_BEAT_SCHEDULE["payments-redeliver-shop-events"] = {
    "task": "payments.tasks.redeliver_shop_events",
    "schedule": 60.0,
}

# --- Reconciliation sweeps (Celery beat) -----------------------------------------
# Seconds between runs of each sweep; 0 turns a sweep off.
PAYMENTS_SWEEP_SECONDS = {
    "apply_pending": 60,
    "expire": 60,
    "stuck": 600,
    "ledger": 300,
    # e.g. PAYMENTS_SWEEP_SECONDS=expire=30,ledger=0
    **{name: int(value) for name, value in env.dict("PAYMENTS_SWEEP_SECONDS", default={}).items()},
}
for _sweep, _seconds in PAYMENTS_SWEEP_SECONDS.items():
    if _seconds > 0:
        CELERY_BEAT_SCHEDULE[f"payments-sweep-{_sweep}"] = {
            "task": "payments.tasks.run_sweep",
            "schedule": float(_seconds),
            "args": (_sweep,),
            # A sweep that could not start before its next run is skipped, not stacked.
            "options": {"expires": float(_seconds)},
        }

# --- Cache (public gateway calls); shared by every process of the service ----
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Merchant payments API",
    "DESCRIPTION": "Create orders at the gateway and follow their payments.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- Logging ------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
