"""Settings for every deployment, driven by environment variables only.

With nothing set, the app runs on embedded defaults under ``./var/`` (Postgres with pgvector, a
file-system broker, local media). Production sets ``DATABASE_URL``, ``REDIS_URL``, S3 and security
variables; see ``.env.example`` and the README's configuration reference.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.embedded import embedded_database, filesystem_broker_options
from config.env import env_bool, env_choice, env_int, env_int_tuple, env_list, env_secret, env_str
from config.middleware_setting import MiddlewareSetting

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var"))).resolve()


def _secret_key() -> str:
    """Return SECRET_KEY from the environment, or a random key generated once and kept in var/."""
    configured = env_secret("SECRET_KEY")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "csp",
    "ninja",
    "axes",
    "accounts_app",
    "providers_app",
    "agents_app",
    "workflows_app",
    "knowledge_app",
    "traces_app",
]

# Django's stock middleware, adapted in config/middleware.py: the ones that only compute run on the
# event loop instead of hopping threads; the browser-only ones (session, CSRF, user, messages) skip API
# calls that carry a bearer token. Same behaviour, much less overhead per API call under ASGI.
MIDDLEWARE = MiddlewareSetting(
    [
        "config.middleware.SecurityMiddleware",
        "servestatic.middleware.ServeStaticMiddleware",
        "config.middleware.SessionMiddleware",
        "config.middleware.CommonMiddleware",
        "config.middleware.CsrfViewMiddleware",
        "config.middleware.AuthenticationMiddleware",
        "config.middleware.MessageMiddleware",
        "config.middleware.XFrameOptionsMiddleware",
        "config.middleware.CSPMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        "accounts_app.middleware.CurrentWorkspaceMiddleware",
        "config.middleware.ApplicationErrorMiddleware",
        "config.middleware.ApiErrorShapeMiddleware",
        "config.middleware.AxesMiddleware",
    ]
)

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
                "csp.context_processors.nonce",
                "accounts_app.context_processors.workspace",
            ],
            # {% load display %}: bubbles, coloured JSON and error blocks, the same on every page.
            "libraries": {"display": "config.display"},
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_secret("DATABASE_URL")
_db: dict[str, Any]
if DATABASE_URL:
    try:
        _db = dict(dj_database_url.parse(DATABASE_URL))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if _db.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL; the platform needs Postgres with pgvector.")
    EMBEDDED_DATABASE = False
else:
    _db = dict(embedded_database(VAR_DIR))
    EMBEDDED_DATABASE = True
# Under ASGI every request's sync code runs on a thread of its own, so per-thread persistent connections
# pile up; Django's advice is no persistent connections plus a pool (psycopg's, built into Django 5.1+).
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=1)
_db["CONN_MAX_AGE"] = 0
if env_bool("DATABASE_POOL", True):
    _db.setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": DATABASE_POOL_MAX_SIZE, "timeout": 10}
DATABASES = {"default": _db}
# The run hot path's statements (config/adb.py) use a small async pool per process, beside Django's.
DATABASE_ASYNC_POOL_MAX_SIZE = env_int("DATABASE_ASYNC_POOL_MAX_SIZE", 10, minimum=1)
# Its statements are prepared once per connection; turn off behind a pooler that cannot keep them (PgBouncer
# in transaction mode before 1.21, or without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The web server and the workers freeze their start-up heap and collect cyclic garbage less often
# (config/memory.py): "young,middle,old" thresholds, or "default" to leave Python's own (700,10,10).
GC_THRESHOLDS: tuple[int, ...] | None = (
    None if env_str("GC_THRESHOLDS") == "default" else env_int_tuple("GC_THRESHOLDS", (20000, 20, 20), minimum=1)
)

AUTH_USER_MODEL = "accounts_app.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files and media -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "access_key": env_secret("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_secret("AWS_SECRET_ACCESS_KEY") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# ServeStatic (WhiteNoise's ASGI-native fork): static files are served without blocking the event loop.
# Files are served from the app folders too, so a missing collectstatic degrades instead of breaking.
SERVESTATIC_USE_FINDERS = True
SERVESTATIC_MANIFEST_STRICT = False

# --- Background work ------------------------------------------------------------------------------
REDIS_URL = env_secret("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 5, "socket_timeout": 10}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(VAR_DIR)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 900, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 960, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

# --- Security -------------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", SECURE_SSL_REDIRECT)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1024)
# The API's JSON bodies (config/input.py): at most this many bytes, nested at most this deep.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 32, minimum=4)
# Failed API token checks per client address and window before 429 (config/throttle.py); 0 turns it off.
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 30, minimum=0)
API_TOKEN_FAILURE_WINDOW_SECONDS = env_int("API_TOKEN_FAILURE_WINDOW_SECONDS", 60, minimum=1)

# Per-workspace run limits (a workspace's own, set in the admin, win): runs in flight (queued or running) and
# runs started per minute; 0 is no limit. Over either, a run is refused with 429 and Retry-After.
RUN_CONCURRENCY_LIMIT = env_int("RUN_CONCURRENCY_LIMIT", 64, minimum=0)
RUN_RATE_LIMIT_PER_MINUTE = env_int("RUN_RATE_LIMIT_PER_MINUTE", 0, minimum=0)

# Sign-in throttling (django-axes, for the sign-in page and the admin's): after SIGNIN_FAILURE_LIMIT failed
# sign-ins for one account, or from one address, that account or address is refused (429) for
# SIGNIN_LOCKOUT_MINUTES without its password even being checked. Operators see and clear lockouts in the
# admin (Axes → Access attempts) or with `manage.py axes_reset`. A success clears the account's failures.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SIGNIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts_app.views.signin_locked_out"
# config.middleware.AxesMiddleware is axes' own, subclassed so that token API calls skip it.
SILENCED_SYSTEM_CHECKS = ["axes.W002"]
# Who may create an account: "open" (anyone), "invitation" (only with a pending invitation's link), "closed"
# (operators create accounts in the admin).
SIGNUP_MODE = env_choice("SIGNUP_MODE", "open", ("open", "invitation", "closed"))

# Scripts and styles come only from our own static files; htmx's indicator styles are shipped in our CSS
# (htmx-config below turns its inline <style> off), so no 'unsafe-inline' is needed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- API ------------------------------------------------------------------------------------------
NINJA_PAGINATION_PER_PAGE = 50
NINJA_PAGINATION_MAX_LIMIT = 200
API_TOKEN_PREFIX = "ap_"  # noqa: S105 - a public prefix, not a secret
API_TOKEN_LAST_USED_RESOLUTION_SECONDS = 60

# --- Credits --------------------------------------------------------------------------------------
CREDITS_STARTING_GRANT = env_int("CREDITS_STARTING_GRANT", 100, minimum=0)
# A reservation left open this long belongs to a run whose worker died; the periodic task refunds it.
CREDITS_RESERVATION_TTL_SECONDS = env_int("CREDITS_RESERVATION_TTL_SECONDS", 3600, minimum=60)

# --- Model providers ----------------------------------------------------------------------------
# Provider keys are encrypted with keys derived from SECRET_KEY (and SECRET_KEY_FALLBACKS) and this salt.
# When rotating SECRET_KEY, keep the old one in SECRET_KEY_FALLBACKS until every key has been re-saved.
SALT_KEY = env_list("FIELD_ENCRYPTION_SALT", ["agents-platform-fields-v1"])
# Internal endpoints that providers may call despite the SSRF guard: host names, IPs or CIDR ranges.
PROVIDER_EGRESS_ALLOWLIST = env_list("PROVIDER_EGRESS_ALLOWLIST", [])
PROVIDER_TIMEOUT_SECONDS = env_int("PROVIDER_TIMEOUT_SECONDS", 120, minimum=1)
PROVIDER_CONNECT_TIMEOUT_SECONDS = env_int("PROVIDER_CONNECT_TIMEOUT_SECONDS", 10, minimum=1)
PROVIDER_TEST_TIMEOUT_SECONDS = env_int("PROVIDER_TEST_TIMEOUT_SECONDS", 15, minimum=1)
# Retries of timeouts, 429 and 5xx, with exponential backoff and jitter (the openai client's policy).
PROVIDER_MAX_RETRIES = env_int("PROVIDER_MAX_RETRIES", 3, minimum=0, maximum=10)
# The bundled local model: a llama.cpp OpenAI-compatible server that `manage.py serve` starts.
LOCAL_MODEL_ENABLED = env_bool("LOCAL_MODEL_ENABLED", True)
LOCAL_MODEL_PORT = env_int("LOCAL_MODEL_PORT", 8081, minimum=1, maximum=65535)
LOCAL_MODEL_BASE_URL = env_str("LOCAL_MODEL_BASE_URL", f"http://127.0.0.1:{LOCAL_MODEL_PORT}/v1")
LOCAL_MODEL_NAME = "smollm2"
LOCAL_MODEL_PRICE_INPUT_PER_MILLION = env_str("LOCAL_MODEL_PRICE_INPUT_PER_MILLION", "0")
LOCAL_MODEL_PRICE_OUTPUT_PER_MILLION = env_str("LOCAL_MODEL_PRICE_OUTPUT_PER_MILLION", "0")
LOCAL_EMBEDDING_THREADS = env_int("LOCAL_EMBEDDING_THREADS", 1, minimum=1, maximum=64)
# A search query's embedding (one short text, waited for): 2 threads take 6 ms to 4 ms (bench/search.py).
LOCAL_QUERY_EMBEDDING_THREADS = env_int("LOCAL_QUERY_EMBEDDING_THREADS", 2, minimum=1, maximum=64)
# Search queries whose embeddings each process keeps (knowledge_app/search.py); 0: none.
SEARCH_QUERY_CACHE_SIZE = env_int("SEARCH_QUERY_CACHE_SIZE", 1000, minimum=0, maximum=1_000_000)

# --- Code sandbox ---------------------------------------------------------------------------------
# User code (function tools and guardrails) runs only in a bubblewrap sandbox (sandbox/executor.py): the
# interpreter below, seeing a read-only /usr and nothing of the app. Limits apply per call.
SANDBOX_PYTHON = env_str("SANDBOX_PYTHON", "/usr/bin/python3")
# As root, each call runs under its own uid from SANDBOX_UID_BASE .. + SANDBOX_SLOTS (calls at once beyond
# that wait); the lock files live here.
SANDBOX_UID_BASE = env_int("SANDBOX_UID_BASE", 1_900_000, minimum=1000)
SANDBOX_SLOTS = env_int("SANDBOX_SLOTS", 64, minimum=1, maximum=4096)
SANDBOX_STATE_DIR = env_str("SANDBOX_STATE_DIR", str(VAR_DIR / "sandbox"))
SANDBOX_CPU_SECONDS = env_int("SANDBOX_CPU_SECONDS", 5, minimum=1, maximum=300)
SANDBOX_WALL_SECONDS = env_int("SANDBOX_WALL_SECONDS", 10, minimum=1, maximum=600)
SANDBOX_MEMORY_MB = env_int("SANDBOX_MEMORY_MB", 256, minimum=64, maximum=16384)
# Endpoint tools and guardrails: time and size limits of one call (the SSRF guard and
# PROVIDER_EGRESS_ALLOWLIST apply to them as to providers).
TOOL_ENDPOINT_TIMEOUT_SECONDS = env_int("TOOL_ENDPOINT_TIMEOUT_SECONDS", 15, minimum=1, maximum=300)
TOOL_ENDPOINT_MAX_BYTES = env_int("TOOL_ENDPOINT_MAX_BYTES", 1_000_000, minimum=1024)

# Knowledge bases: uploads are untrusted; these bound what one file may cost to read.
KNOWLEDGE_MAX_FILE_BYTES = env_int("KNOWLEDGE_MAX_FILE_MB", 50, minimum=1, maximum=2048) * 1024 * 1024
KNOWLEDGE_MAX_PDF_PAGES = env_int("KNOWLEDGE_MAX_PDF_PAGES", 2000, minimum=1, maximum=100_000)

# --- Agent runs -----------------------------------------------------------------------------------
# Every run reserves at least this much (so every run writes ledger entries and a workspace with no
# credits cannot run), plus its worst-case price: input estimate and max output tokens per turn.
RUN_MIN_RESERVATION = env_str("RUN_MIN_RESERVATION", "0.01")
RUN_RESERVATION_OUTPUT_TOKENS = env_int("RUN_RESERVATION_OUTPUT_TOKENS", 2048, minimum=1)
RUN_RESERVATION_TURNS = env_int("RUN_RESERVATION_TURNS", 3, minimum=1)
# A run's start commits without waiting for the disk flush; its end always waits (see agents_app/runs/statements.py).
RUN_START_ASYNC_COMMIT = env_bool("RUN_START_ASYNC_COMMIT", True)
# Plain token runs and searches served on the event loop in front of Django (config/hot_path.py); false: Django
# serves all. RUN_HOT_PATH is its former name.
API_HOT_PATH = env_bool("API_HOT_PATH", env_bool("RUN_HOT_PATH", True))
# How long a background run's live events stay readable (GET /api/v1/runs/{id}/events) after the last one.
RUN_EVENTS_TTL_SECONDS = env_int("RUN_EVENTS_TTL_SECONDS", 3600, minimum=60)
# A run is stopped (failed, refunded) after this long. With the Celery time limit it bounds every live run,
# so one still unfinished after CREDITS_RESERVATION_TTL_SECONDS is dead: the periodic sweep fails it.
RUN_TIMEOUT_SECONDS = env_int("RUN_TIMEOUT_SECONDS", 900, minimum=1)
# A workflow run stops (failed, "step_budget_exceeded") after this many steps, loops included.
WORKFLOW_MAX_STEP_RUNS = env_int("WORKFLOW_MAX_STEP_RUNS", 200, minimum=1)
# A running workflow run renews its claim this often; one not renewed for WORKFLOW_STALL_SECONDS has lost its process:
# the periodic sweep hands a background run to another worker (at most WORKFLOW_MAX_ATTEMPTS times) and fails others.
WORKFLOW_HEARTBEAT_SECONDS = env_int("WORKFLOW_HEARTBEAT_SECONDS", 10, minimum=1)
WORKFLOW_STALL_SECONDS = env_int("WORKFLOW_STALL_SECONDS", 60, minimum=3)
WORKFLOW_MAX_ATTEMPTS = env_int("WORKFLOW_MAX_ATTEMPTS", 3, minimum=1)
if WORKFLOW_STALL_SECONDS < 3 * WORKFLOW_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("WORKFLOW_STALL_SECONDS must be at least three WORKFLOW_HEARTBEAT_SECONDS.")
if max(RUN_TIMEOUT_SECONDS, CELERY_TASK_TIME_LIMIT) >= CREDITS_RESERVATION_TTL_SECONDS:
    raise ImproperlyConfigured(
        "CREDITS_RESERVATION_TTL_SECONDS must be longer than RUN_TIMEOUT_SECONDS and CELERY_TASK_TIME_LIMIT: "
        "a run still open after that time is treated as dead."
    )

# --- Traces ---------------------------------------------------------------------------------------
# Store every run's trace and spans (traces_app/processor.py). Off: nothing is stored or sent anywhere.
TRACES_ENABLED = env_bool("TRACES_ENABLED", True)
# Strings in stored spans are cut to this many characters (a model's whole input can be huge).
TRACE_MAX_STRING_CHARS = env_int("TRACE_MAX_STRING_CHARS", 20_000, minimum=100)
# Optional OTLP/HTTP (JSON) export of the stored spans to the operator's collector (traces_app/otlp.py),
# with OpenTelemetry's standard variable names.
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
if OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and not OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.startswith(("http://", "https://")):
    raise ImproperlyConfigured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http:// or https:// URL.")
OTEL_EXPORTER_OTLP_HEADERS = {
    unquote(key.strip()): unquote(value.strip())
    for key, _, value in (item.partition("=") for item in env_list("OTEL_EXPORTER_OTLP_HEADERS", []))
    if key.strip()
}
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "agents-platform")
# Where workspaces that ask for it forward their traces (traces_app/forwarding.py): OpenAI's trace ingestion.
OPENAI_TRACES_INGEST_URL = env_str("OPENAI_TRACES_INGEST_URL", "https://api.openai.com/v1/traces/ingest")
if not OPENAI_TRACES_INGEST_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("OPENAI_TRACES_INGEST_URL must be an http:// or https:// URL.")

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact_secrets": {"()": "config.logfilters.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Never log model inputs and outputs from the SDK: they may hold users' data.
        "openai.agents": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
    },
}

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "agents-platform@localhost")
