"""Settings, all read from the environment (django-environ).

Every variable is listed in `.env.example`, the README and `docs/deploy.md`.
Production is the default: DEBUG, the sandbox and the demo shop are off, and
only the environment is read (a secret may also come from a file:
`DJANGO_SECRET_KEY_FILE=/run/secrets/...`). Development is switched on
explicitly with DJANGO_DEBUG=1 (`make run` and the tests do): then `.env` and
the `var/dev.env` that `make run` writes are read too, and the service runs on
embedded defaults that need no server: SQLite under `var/`, Celery over
kombu's filesystem transport under `var/`, and the sandbox gateway mounted in
the same server.
"""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.management.utils import get_random_secret_key
from django_guid.integrations import CeleryIntegration
from kombu import Exchange, Queue

from merchant import logs as _logs
from merchant import queues as _queues
from payments import conf as _app
from payments.api.schema_settings import SCHEMA_SETTINGS, SWAGGER_SETTINGS

BASE_DIR = Path(__file__).resolve().parent.parent

# `X_FILE=/path` gives X the file's content (secrets mounted by the process manager).
env = environ.FileAwareEnv()
# Development mode comes from the real environment only, never from a file.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
if DEBUG:
    # Real environment variables win over both files (read_env only sets what is missing).
    environ.Env.read_env(BASE_DIR / ".env")
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
if DEBUG:
    # Written by `make run` on first start: a generated secret key and sandbox credentials.
    environ.Env.read_env(VAR_DIR / "dev.env")

# Keys made for development start with this (as Django's startproject's do); the deploy
# checks refuse them.
DEV_KEY_PREFIX = _app.DEFAULTS["DEV_KEY_PREFIX"]
# Production refuses to start without it (payments.checks); development gets a
# per-process key unless `make run` generated a lasting one in var/dev.env.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or (
    DEV_KEY_PREFIX + get_random_secret_key() if DEBUG else ""
)

# Former keys, still accepted for sessions and signed values while rotating the key.
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])

HOST = env.str("HOST", default="127.0.0.1")
PORT = env.int("PORT", default=_app.DEFAULTS["PORT"])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=f"http://{HOST}:{PORT}").rstrip("/")

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["127.0.0.1", "localhost", "[::1]", HOST, urlsplit(PUBLIC_BASE_URL).hostname or HOST],
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "payments",
    "sandbox",
    "demo_shop",
]

MIDDLEWARE = [
    # Outermost but for the request id (inserted below): Django's own error answers under
    # /api/ (no URL matched, a 500) in the API's error body; HTML for the rest of the site.
    "payments.api.errors.ApiErrorMiddleware",
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
    DATABASES["default"].setdefault("OPTIONS", {})

# --- PostgreSQL: lock timeout, and a pooler in front (merchant.pooling) -----------
# A request waiting on a locked row gives up (and an IPN is answered 503, so the
# gateway retries) well before gunicorn's 60 s timeout kills the worker.
DATABASE_LOCK_TIMEOUT_MS = env.int(
    "DATABASE_LOCK_TIMEOUT_MS", default=_app.DEFAULTS["DATABASE_LOCK_TIMEOUT_MS"]
)
# "transaction": DATABASE_URL is a pooler in transaction mode (PgBouncer), which lends a
# server connection per transaction: no session state at all (docs/deploy.md, PgBouncer).
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    if DATABASE_POOLER == "transaction":
        # SET LOCAL in every transaction instead of the startup option; a named cursor
        # WITH HOLD would outlive the transaction on a server connection lent to others.
        # (Django already leaves psycopg's prepared statements off: prepare_threshold None.)
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    else:
        # Direct: set for the whole session, so every statement has it, at no cost.
        DATABASES["default"]["OPTIONS"].setdefault(
            "options", f"-c lock_timeout={DATABASE_LOCK_TIMEOUT_MS}"
        )

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
    # Production serves what `collectstatic` (make serve) gathered: compressed, with
    # content hashes in the names, so browsers may cache them for ever.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Serve static files straight from the apps in development (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- HTTPS behind a reverse proxy (docs/deploy.md) --------------------------------
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# The header the reverse proxy sets to the scheme the client used, e.g. X-Forwarded-Proto.
# Only behind a proxy that always sets (or strips) it: a client could send it otherwise.
_PROXY_SSL_HEADER = env.str("DJANGO_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (
    (f"HTTP_{_PROXY_SSL_HEADER.upper().replace('-', '_')}", "https") if _PROXY_SSL_HEADER else None
)
USE_X_FORWARDED_HOST = env.bool("DJANGO_USE_X_FORWARDED_HOST", default=False)
# SQLite and the filesystem broker serve one machine only: production refuses them
# unless the operator says that is the plan (a deploy check).
DEPLOY_SINGLE_MACHINE = env.bool("DEPLOY_SINGLE_MACHINE", default=False)

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

# --- Celery queues, countdowns and time limits (docs/deploy.md "Queues and workers") ---
# Queues by purpose (merchant.queues); a worker without -Q consumes them all.
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in _queues.ALL]
CELERY_TASK_DEFAULT_QUEUE = _queues.DEFAULT
CELERY_TASK_ROUTES = (_queues.route_task,)
# A retry due later than this is not held by the broker as a countdown: it stays in the
# database (next_attempt_at) and a beat sweep enqueues it when due. RabbitMQ closes the
# channel of a consumer holding an unacknowledged message past its consumer_timeout
# (30 min) and Redis redelivers one past its visibility timeout (1 h).
CELERY_MAX_COUNTDOWN_SECONDS = env.float(
    "CELERY_MAX_COUNTDOWN_SECONDS", default=_app.DEFAULTS["CELERY_MAX_COUNTDOWN_SECONDS"]
)
# Any task without limits of its own (payments.tasks and sandbox.tasks set theirs) is
# interrupted (SoftTimeLimitExceeded) after the first and its process killed after the second.
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360

# --- Celery beat: one scheduler among many (merchant.beat) ----------------------
# Beat may run on every node: only the holder of a lease in the database sends tasks.
# A holder that dies or hangs is replaced within this many seconds (plus a third).
CELERY_BEAT_SCHEDULER = "merchant.beat:LeaseScheduler"
BEAT_LEASE_SECONDS = env.float("BEAT_LEASE_SECONDS", default=_app.DEFAULTS["BEAT_LEASE_SECONDS"])

# --- The gateway and the sandbox ------------------------------------------
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
# Where the sandbox gateway is served. `make run` starts it as a process of its own on
# SANDBOX_PORT (the Procfile's `sandbox` line, settings sandbox.site_settings), as a
# real gateway is, so the service never waits on its own web server's threads for it.
# Unset, the service's own server mounts it at PUBLIC_BASE_URL/sandbox/ (tests, one process).
SANDBOX_URL = env.str("SANDBOX_URL", default="").rstrip("/")
_sandbox_at = f"{SANDBOX_URL or PUBLIC_BASE_URL}/sandbox"
GATEWAY_API_URL = env.str("GATEWAY_API_URL", default=f"{_sandbox_at}/api/")
GATEWAY_PAYMENT_HOST = env.str("GATEWAY_PAYMENT_HOST", default=_sandbox_at).rstrip("/")
GATEWAY_API_KEY = env.str("GATEWAY_API_KEY", default="")
GATEWAY_API_SECRET = env.str("GATEWAY_API_SECRET", default="")
GATEWAY_CONNECT_TIMEOUT = env.float(
    "GATEWAY_CONNECT_TIMEOUT", default=_app.DEFAULTS["GATEWAY_CONNECT_TIMEOUT"]
)
GATEWAY_READ_TIMEOUT = env.float(
    "GATEWAY_READ_TIMEOUT", default=_app.DEFAULTS["GATEWAY_READ_TIMEOUT"]
)
GATEWAY_USER_AGENT = env.str("GATEWAY_USER_AGENT", default=_app.DEFAULTS["GATEWAY_USER_AGENT"])
# A private call rejected for a stale nonce (another process's call overtook
# it) is re-signed with a fresh nonce this many times before giving up.
GATEWAY_NONCE_RETRIES = env.int(
    "GATEWAY_NONCE_RETRIES", default=_app.DEFAULTS["GATEWAY_NONCE_RETRIES"]
)
# The gateway caches public methods for 10 s and drops clients that poll faster.
GATEWAY_PUBLIC_CACHE_SECONDS = env.int(
    "GATEWAY_PUBLIC_CACHE_SECONDS", default=_app.DEFAULTS["GATEWAY_PUBLIC_CACHE_SECONDS"]
)

# --- Gateway calls per API key, one at a time (payments.nonces.nonce_call_lock) -------
# Every process holds the key's lock from taking a nonce until the gateway's reply, so
# calls never overtake each other's nonce; a caller waits at most this long for it (then
# 503 gateway_unavailable, nothing sent). 0 turns the lock off (the stale-nonce retries
# then sort it out). The default outlasts one call that waits out both timeouts.
GATEWAY_CALL_LOCK_SECONDS = env.float(
    "GATEWAY_CALL_LOCK_SECONDS",
    default=_app.call_lock_seconds(GATEWAY_CONNECT_TIMEOUT, GATEWAY_READ_TIMEOUT),
)

# --- Orders -------------------------------------------------------------------
# Seconds an order waits for payment before it expires.
PAYMENTS_ORDER_TTL = env.int("PAYMENTS_ORDER_TTL", default=_app.DEFAULTS["PAYMENTS_ORDER_TTL"])
# Seconds an order may stay `confirming` before it is flagged for a person.
PAYMENTS_CONFIRMING_TTL = env.int(
    "PAYMENTS_CONFIRMING_TTL", default=_app.DEFAULTS["PAYMENTS_CONFIRMING_TTL"]
)
# How far short of its quote a fiat order's BTC payment may fall and still pay it
# (a fraction: 0.005 = 0.5 %), and how far over before it is flagged `overpaid`.
try:
    PAYMENTS_UNDERPAID_TOLERANCE = Decimal(
        env.str(
            "PAYMENTS_UNDERPAID_TOLERANCE",
            default=str(_app.DEFAULTS["PAYMENTS_UNDERPAID_TOLERANCE"]),
        )
    )
except InvalidOperation:  # not a number: check payments.E006 says so, by name
    PAYMENTS_UNDERPAID_TOLERANCE = Decimal("NaN")
# Seconds a fiat order's quote holds: money sent later is not checked against a rate that
# may have moved since; the order is flagged `quote_expired` for a person instead of paid.
PAYMENTS_QUOTE_WINDOW = env.int("PAYMENTS_QUOTE_WINDOW", default=PAYMENTS_ORDER_TTL)
# Where the shop's return URLs may point (no open redirects): a host (`shop.example`,
# any http(s) URL on it) or an origin (`https://shop.example:8443`, that scheme and
# port only). The service's own host is always allowed.
PAYMENTS_RETURN_HOSTS = env.list("PAYMENTS_RETURN_HOSTS", default=[])
# Who applies a verified IPN: "request" (the request that stores it, before answering [OK])
# or "worker" (the request stores it and answers; a Celery worker applies it within
# milliseconds: more IPNs/s per web process; needs a running worker and broker).
PAYMENTS_IPN_APPLY = env.str("PAYMENTS_IPN_APPLY", default=_app.DEFAULTS["PAYMENTS_IPN_APPLY"])
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
# After `migrate`, the sandbox makes the account of GATEWAY_API_KEY / _SECRET (off in tests).
SANDBOX_ACCOUNT_ON_MIGRATE = env.bool("SANDBOX_ACCOUNT_ON_MIGRATE", default=True)
# The largest request body the sandbox's API reads (its calls are small forms).
SANDBOX_MAX_REQUEST_BYTES = env.int("SANDBOX_MAX_REQUEST_BYTES", default=16 * 1024)
if SANDBOX_ENABLED:
    CELERY_BEAT_SCHEDULE["sandbox-redeliver-due-ipns"] = {
        "task": "sandbox.tasks.redeliver_due_ipns",
        "schedule": 300.0,
    }

# --- Shop webhooks --------------------------------------------------------------
# Each shop's webhook endpoints are rows (admin, `manage.py shop_webhook_add`). These two
# are the default shop's first endpoint, kept in step with them (README: Shop webhooks):
# when set, every order change of the default shop is POSTed there as signed JSON.
SHOP_WEBHOOK_URL = env.str("SHOP_WEBHOOK_URL", default="")
# Its Standard Webhooks secret, "whsec_" + standard base64 (README: Shop webhooks);
# required when the URL is set. Another value signs with its raw bytes (payments.W401).
SHOP_WEBHOOK_SECRET = env.str("SHOP_WEBHOOK_SECRET", default="")
# After a secret's rotation the former one keeps signing too, for this long.
SHOP_WEBHOOK_ROTATION_HOURS = env.float(
    "SHOP_WEBHOOK_ROTATION_HOURS", default=_app.DEFAULTS["SHOP_WEBHOOK_ROTATION_HOURS"]
)
# Seconds to wait for the shop's answer (connect and read, each).
SHOP_WEBHOOK_TIMEOUT = env.float(
    "SHOP_WEBHOOK_TIMEOUT", default=_app.DEFAULTS["SHOP_WEBHOOK_TIMEOUT"]
)
# Failed deliveries are retried with exponential backoff for this long, then given up.
SHOP_WEBHOOK_RETRY_HOURS = env.float(
    "SHOP_WEBHOOK_RETRY_HOURS", default=_app.DEFAULTS["SHOP_WEBHOOK_RETRY_HOURS"]
)

# --- Reconciliation sweeps (Celery beat) -----------------------------------------
# Seconds between runs of each sweep; 0 turns a sweep off.
PAYMENTS_SWEEP_SECONDS = {
    **_app.DEFAULTS["PAYMENTS_SWEEP_SECONDS"],
    # e.g. PAYMENTS_SWEEP_SECONDS=expire=30,ledger=0
    **{name: int(value) for name, value in env.dict("PAYMENTS_SWEEP_SECONDS", default={}).items()},
}
# Their schedule, and the shop events' safety net (enqueues events whose delivery or retry
# was lost: broker down, worker died), every minute.
CELERY_BEAT_SCHEDULE.update(_app.beat_schedule(sweep_seconds=PAYMENTS_SWEEP_SECONDS))

# --- Health: /livez, /readyz (merchant.health, docs/deploy.md "Health") ----------------
# Each Celery worker records a heartbeat in the database this often (merchant.heartbeat)...
HEALTH_WORKER_BEAT_SECONDS = env.float(
    "HEALTH_WORKER_BEAT_SECONDS", default=_app.DEFAULTS["HEALTH_WORKER_BEAT_SECONDS"]
)
# ...and /readyz counts a worker as seen when its last beat is at most this old.
HEALTH_WORKER_SEEN_SECONDS = env.float(
    "HEALTH_WORKER_SEEN_SECONDS", default=_app.DEFAULTS["HEALTH_WORKER_SEEN_SECONDS"]
)
# /readyz's broker check gives up after this long (connect and answer), so that a broker
# that is down or hung never holds a request thread.
HEALTH_BROKER_TIMEOUT_SECONDS = env.float(
    "HEALTH_BROKER_TIMEOUT_SECONDS", default=_app.DEFAULTS["HEALTH_BROKER_TIMEOUT_SECONDS"]
)
# ...and runs at most this often per web process (a fresh connection costs CPU and the
# broker a connection); requests in between answer with the last result.
HEALTH_BROKER_CHECK_SECONDS = env.float(
    "HEALTH_BROKER_CHECK_SECONDS", default=_app.DEFAULTS["HEALTH_BROKER_CHECK_SECONDS"]
)
# Probes speak plain HTTP to the process itself: never redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^(livez|readyz|healthz)$"]

# --- Cache (public gateway calls); shared by every process of the service ----
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

# --- REST API -----------------------------------------------------------------
# A shop's API token (payments.api.authentication): `Token <key>` or `Bearer <key>`. Only
# tokens: a browser session is a Django user of no shop, so it does not open the API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["payments.api.authentication.ShopTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["payments.api.authentication.ShopTokenRequired"],
    # For `manage.py spectacular` (its webhooks); the served schema needs none of this.
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Every error in one body (payments/api/errors.py). JSON in and out, as the schema says
    # (a schema with form bodies too breaks generated clients: they send one of the three).
    "EXCEPTION_HANDLER": "payments.api.errors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
# The API's schema settings are the app's (payments.api.schema_settings: the schema view
# applies them itself, in a host project too); here for `manage.py spectacular`.
SPECTACULAR_SETTINGS = {**SCHEMA_SETTINGS, **SWAGGER_SETTINGS, "SERVE_INCLUDE_SCHEMA": False}

# --- Abuse: admin login lockout (django-axes) and the order-creation throttle ---------
# docs/deploy.md "Abuse". Bad values are refused by checks payments.E201-E204.
INSTALLED_APPS += ["axes"]
# Last: it turns the lockout flag set during authentication into the lockout page.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
# Axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
# Each entry locks on its own: `username` (from any address), `ip_address` (any username
# from it), or `username+ip_address` (only that pair).
AXES_LOCKOUT_PARAMETERS = [
    part.split("+") if "+" in part else part
    for part in env.list("ADMIN_LOGIN_LOCKOUT_BY", default=["username", "ip_address"])
]
# A successful login clears that user's and address's failures.
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# The client address is REMOTE_ADDR, as Django sees it (django-ipware is not installed, so
# axes reads nothing else): behind a reverse proxy that is the proxy's address unless the
# server is told the client's (docs/deploy.md "Abuse"; deploy check payments.E111).
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

# Order creations per API token (`60/min`, `1000/hour`, ...; empty or 0: no limit), counted
# in the default cache: shared by every process only if CACHE_URL is (files on one
# machine, Redis, ...); a per-process cache (locmem) would count each process apart.
API_ORDER_CREATE_RATE: str | None = env.str(
    "API_ORDER_CREATE_RATE", default=_app.DEFAULTS["API_ORDER_CREATE_RATE"]
).strip()
if API_ORDER_CREATE_RATE in ("", "0"):
    API_ORDER_CREATE_RATE = None

# --- Logs and metrics (merchant.logs, merchant.metrics; docs/deploy.md "Logs and metrics") ---
# `plain` (for people) or `json` (one object per line, for a log pipeline); gunicorn's own
# lines follow with `--logger-class merchant.logs.GunicornLogger`, Celery's through
# merchant.celery's setup_logging receiver.
LOGGING = _logs.logging_config(
    env.str("LOG_FORMAT", default="plain"), env.str("LOG_LEVEL", default="INFO")
)
# The request id (django-guid): a sane incoming X-Request-ID (a UUID, or 32 hex digits as
# nginx's $request_id) is kept, anything else replaced; echoed in the response and carried
# in the headers of the Celery tasks the request enqueues.
INSTALLED_APPS += ["django_guid"]
MIDDLEWARE.insert(0, "django_guid.middleware.guid_middleware")
DJANGO_GUID = {
    "GUID_HEADER_NAME": _logs.REQUEST_ID_HEADER,
    "VALIDATE_GUID": True,
    "EXPOSE_HEADER": False,
    "INTEGRATIONS": [CeleryIntegration()],
}
# /metrics (Prometheus) answers a `Authorization: Bearer METRICS_TOKEN` request or one from
# METRICS_ALLOWED_IPS (addresses or networks, as REMOTE_ADDR shows them); off (404) when
# neither is set. Bad entries are refused by check payments.E301.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
# Counters of the web and Celery processes of one machine add up through files in this
# folder (prometheus-client's multiprocess mode): one folder per machine, shared by all its
# processes of the service. It may be emptied before they start (counters then restart at 0).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus"))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", PROMETHEUS_MULTIPROC_DIR)
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
