"""Kiln's settings: one file, every value from the environment with a documented default.

The defaults run Kiln on a laptop with nothing set (`make run`): SQLite and an embedded Redis on a unix
socket, both under `var/`. Production sets DEBUG=false, SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and
REDIS_URL; every variable is listed with its default in the README and in `deploy/env.example`.
"""

from __future__ import annotations

import getpass
import os
import socket
import urllib.parse
import zoneinfo
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from config.cores import usable_cores
from config.env import (
    env_admins,
    env_bool,
    env_int,
    env_int_map,
    env_list,
    env_path,
    env_port,
    env_queues,
    env_str,
)
from config.queues import QueueSpec, celery_queues, celery_routes, longest_time_limit, queues_check
from config.secrets import mask
from mediastore.location import media_location, storage_setting

BASE_DIR = Path(__file__).resolve().parent.parent
_env = os.environ

# --- Core -----------------------------------------------------------------------------------------
# Off unless set: an env file that forgets DEBUG starts a production server, not a debug one. `make run`,
# `make test` and the other make targets set DEBUG=true for a laptop (Makefile).
DEBUG = env_bool(_env, "DEBUG", False)

if DEBUG:
    # Good enough for a laptop, never for a server: with DEBUG off SECRET_KEY has no default.
    SECRET_KEY = env_str(_env, "SECRET_KEY", "django-insecure-kiln-development-only")
    ALLOWED_HOSTS = env_list(_env, "ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
else:
    _production = " (DEBUG is off, as it is unless set: set DEBUG=true on a laptop, as `make run` does)"
    SECRET_KEY = env_str(_env, "SECRET_KEY", "")
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set" + _production)
    ALLOWED_HOSTS = env_list(_env, "ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set (a comma-separated list)" + _production)

TIME_ZONE = env_str(_env, "TIME_ZONE", "UTC")
if TIME_ZONE not in zoneinfo.available_timezones():
    raise ImproperlyConfigured(
        f"TIME_ZONE must be an IANA time zone such as Europe/Berlin, got {TIME_ZONE!r}"
    )
USE_TZ = True
LANGUAGE_CODE = "en-us"
FORMAT_MODULE_PATH = ["config.formats"]  # "4 Dec 2026, 02:56" everywhere (config/formats/en/formats.py)
USE_I18N = True

# Everything Kiln writes at run time lives under one directory (never in the repository in production).
KILN_VAR_DIR = env_path(_env, "KILN_VAR_DIR", BASE_DIR / "var")
KILN_LOG_DIR = env_path(_env, "KILN_LOG_DIR", KILN_VAR_DIR / "log")
KILN_RUN_DIR = env_path(_env, "KILN_RUN_DIR", KILN_VAR_DIR / "run")

# --- Processes (read by supervisord through `manage.py kiln run`, and by deploy/env.example) ------------
KILN_PORT = env_port(_env, "KILN_PORT", 8000)
KILN_FLOWER_PORT = env_port(_env, "KILN_FLOWER_PORT", 5555)
KILN_USER = env_str(_env, "KILN_USER", getpass.getuser())
KILN_WEB_WORKERS = env_int(_env, "KILN_WEB_WORKERS", 3, minimum=1)

# --- Queues: each with its own pool of worker processes (config/queues.py) ---------------------------
# The one place a queue is declared: routing, time limits, health thresholds, alerts, the dashboard, the
# variables kiln.conf expands and `manage.py kiln check` all follow from it. To add a queue, add a
# QueueSpec here and its pool's program to deploy/ (README: "Add your own queue"). The environment
# overrides each pool's size (KILN_<QUEUE>_MIN_PROCESSES and _MAX_PROCESSES, or KILN_<QUEUE>_CONCURRENCY)
# and the waits (KILN_QUEUE_WAITS, KILN_QUEUE_WAITS_CRITICAL).
# The cores this machine lets Kiln use (affinity and cgroup quota): a CPU-bound pool's ceiling follows them.
KILN_CORES = usable_cores()
# CPU priorities, measured on one 2-core server with worker-high saturated (bench/responsive.py,
# docs/performance.md): the web at nice 0, worker-high at 15, worker-default at 19 keeps the queues' order
# and gives a page the CPU first. With worker-high at nice 0 the pages' p99 went from 14-20 ms to 0.4-0.55 s;
# at nice 10 to 48-57 ms (3-3.5x), at 15 to 25-51 ms (1.9-2.7x), rendering as many thumbnails a minute.
KILN_QUEUES = env_queues(
    _env,
    (
        # Thumbnails: people wait for them. The seeds' Horizon setups scale this queue between 2 and 10
        # processes; rendering is CPU-bound, so here the ceiling is 10 or twice the cores, whichever is
        # lower (2 to 6 processes on 2 cores rendered 1.05-1.27x what 10 did). An oldest wait over a minute
        # is worth a mail.
        QueueSpec(
            name="high",
            routes=("thumbnails.*",),
            time_limit=120,
            soft_time_limit=110,
            wait_warning=60,
            wait_critical=300,
            autoscale=(2, 10),
            per_core=2,
            nice=15,
        ),
        # Purges and every task no route names: maintenance, below the web and thumbnails.
        QueueSpec(
            name="default",
            routes=("purge.*",),
            time_limit=300,
            soft_time_limit=280,
            wait_warning=900,
            wait_critical=3600,
            concurrency=2,
            nice=19,
        ),
    ),
    KILN_CORES,
)

# The most processes an operator can scale one pool to at run time (dashboard, `jobs scale`).
KILN_POOL_SCALE_MAX = env_int(_env, "KILN_POOL_SCALE_MAX", 32, minimum=1, maximum=1000)

# --- Database -------------------------------------------------------------------------------------
_default_database_url = f"sqlite:///{KILN_VAR_DIR / 'db.sqlite3'}"
try:
    _database = dj_database_url.parse(
        env_str(_env, "DATABASE_URL", _default_database_url), conn_max_age=60, conn_health_checks=True
    )
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL cannot be read: {mask(str(exc))}") from None
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and beat write one SQLite file at once: WAL lets readers go on during a write,
    # IMMEDIATE takes the write lock at BEGIN (no deadlock on lock upgrade) and the timeout waits for it
    # instead of failing with "database is locked".
    _database["CONN_MAX_AGE"] = 0
    _database["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: the broker and the result backend -----------------------------------------------------
KILN_REDIS_SOCKET = KILN_RUN_DIR / "redis.sock"
# Unset means the embedded redis-server that `make run` starts on a unix socket: no TCP port at all,
# so it can never collide with a system Redis on 6379.
KILN_EMBEDDED_REDIS = not _env.get("REDIS_URL")
REDIS_URL = env_str(_env, "REDIS_URL", f"redis+socket://{KILN_REDIS_SOCKET}")
if REDIS_URL.split("://", 1)[0] not in {"redis", "rediss", "redis+socket"}:
    raise ImproperlyConfigured(
        f"REDIS_URL must start with redis://, rediss:// or redis+socket://, got {mask(REDIS_URL)!r}"
    )
try:
    # A port that is not a number would pass here and fail at the first connection, in a worker's log.
    _redis_port = urllib.parse.urlsplit(REDIS_URL).port
except ValueError:
    raise ImproperlyConfigured(
        f"REDIS_URL has a port that is not a number between 0 and 65535: {mask(REDIS_URL)!r}"
    ) from None

# --- Apps -----------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "csp",
    # Kiln's apps; the arrows point one way (docs/architecture.md): reports -> thumbnails; reports,
    # thumbnails, jobs, metrics, outbox -> purge (registration only); jobs -> metrics; jobs, purge -> outbox;
    # jobs -> broker (a plain package, not an app).
    "accounts",
    "blueprint",
    "jobs",
    "metrics",
    "outbox",
    "purge",
    "thumbnails",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page (accounts/throttle.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "jobs.context_processors.operator_links",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

STATIC_URL = "/static/"
# The site's own stylesheet (config/static/kiln/site.css); the apps' static files come from their folders.
STATICFILES_DIRS = [BASE_DIR / "config" / "static"]
STATIC_ROOT = env_path(_env, "STATIC_ROOT", KILN_VAR_DIR / "static")
MEDIA_URL = "/media/"
MEDIA_ROOT = env_path(_env, "MEDIA_ROOT", KILN_VAR_DIR / "media")
# Where originals and renditions live: unset, files under MEDIA_ROOT (one host); s3://bucket/prefix?endpoint=…
# an S3 bucket shared by every host (mediastore/location.py), with its keys in KILN_S3_ACCESS_KEY_ID and
# KILN_S3_SECRET_ACCESS_KEY. Originals stay private; renditions are shown through signed URLs.
KILN_MEDIA_LOCATION = media_location(env_str(_env, "KILN_MEDIA_STORAGE", ""))
STORAGES = {
    "default": storage_setting(KILN_MEDIA_LOCATION, _env),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Behind nginx (deploy/nginx/kiln.conf) ------------------------------------------------------------
# nginx always overwrites X-Forwarded-Proto with the scheme the client used, and gunicorn listens on
# loopback only, so the header can be trusted: request.is_secure() is true for an https request.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# nginx passes the client's Host header itself (proxy_set_header Host $http_host): no X-Forwarded-Host.
USE_X_FORWARDED_HOST = False
# Origins (scheme://host[:port]) whose POSTs Django accepts, e.g. https://kiln.example.com when a form
# is posted across origins; same-origin forms behind nginx need nothing here.
CSRF_TRUSTED_ORIGINS = env_list(_env, "KILN_CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"KILN_CSRF_TRUSTED_ORIGINS items must start with http:// or https://, got {_origin!r}"
        )
# True once nginx serves the site over https (the TLS variant in kiln.conf): cookies are sent over https
# only, plain http is redirected, and browsers are told to use https for a year (HSTS). Off by default
# so `make run` (plain http on 127.0.0.1) keeps working.
KILN_TLS = env_bool(_env, "KILN_TLS", False)
SESSION_COOKIE_SECURE = KILN_TLS
CSRF_COOKIE_SECURE = KILN_TLS
SECURE_SSL_REDIRECT = KILN_TLS
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if KILN_TLS else 0
# Whole-domain promises only the domain's owner can make: every subdomain is https too, and the domain may
# go on the browsers' preload list. Off unless set (Django's check --deploy notes them).
SECURE_HSTS_INCLUDE_SUBDOMAINS = KILN_TLS and env_bool(_env, "KILN_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = KILN_TLS and env_bool(_env, "KILN_HSTS_PRELOAD", False)

# --- Content-Security-Policy (django-csp) ----------------------------------------------------------------
# Scripts and style sheets from the site itself, or inline with this response's nonce
# (`nonce="{{ request.csp_nonce }}"` on each inline <script> and <style>); style attributes stay allowed
# (the admin's widgets use them). No plugins, no framing, forms post to the site only. django-csp because it
# adds a fresh nonce per response, which Django 5.2 alone does not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        # Renditions on an object store come from its signed URLs.
        "img-src": [SELF, "data:", *KILN_MEDIA_LOCATION.url_origins()],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- Logins: throttled by django-axes (accounts/throttle.py) -------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out (username, address) before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
KILN_LOGIN_FAILURE_LIMIT = env_int(_env, "KILN_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=100)
KILN_LOGIN_LOCKOUT_MINUTES = env_int(_env, "KILN_LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=7 * 24 * 60)
AXES_FAILURE_LIMIT = KILN_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=KILN_LOGIN_LOCKOUT_MINUTES)
# Per username *and* address: a guesser is stopped, while nobody can lock a colleague out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.throttle.lockout_response"
# What the attempt records keep of a request: never the password field (axes' default), nor a token.
AXES_SENSITIVE_PARAMETERS = ["password", "token", "csrfmiddlewaretoken"]
# axes logs every attempt at INFO by default; Kiln logs the lockouts (accounts/throttle.py).
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reports:list"

# --- Images ---------------------------------------------------------------------------------------
# Uploads above this are refused with 413 before anything is stored; nginx's client_max_body_size on
# the upload locations must agree (`deploy/`).
KILN_UPLOAD_MAX_MB = env_int(_env, "KILN_UPLOAD_MAX_MB", 25, minimum=1)
KILN_UPLOAD_MAX_BYTES = KILN_UPLOAD_MAX_MB * 1024 * 1024
# Per-user upload limits (not for users with thumbnails.upload_without_limits, superusers included): past
# one, an upload answers 429 with Retry-After. Counted from the database, so every web process agrees.
KILN_UPLOADS_PER_MINUTE = env_int(_env, "KILN_UPLOADS_PER_MINUTE", 30, minimum=1)
KILN_UPLOAD_MB_PER_HOUR = env_int(_env, "KILN_UPLOAD_MB_PER_HOUR", 2048, minimum=1)
KILN_UPLOAD_MEGAPIXELS_PER_HOUR = env_int(_env, "KILN_UPLOAD_MEGAPIXELS_PER_HOUR", 3000, minimum=1)
# A file with more pixels than this per byte is refused at upload (its header is read, nothing decoded):
# real photos carry 2 to 20, a flat-colour 49 MP PNG of 140 KB about 350. Images up to
# KILN_UPLOAD_PLAUSIBLE_FREE_MEGAPIXELS are never refused for it (icons, diagrams, screenshots).
KILN_UPLOAD_MAX_PIXELS_PER_BYTE = env_int(_env, "KILN_UPLOAD_MAX_PIXELS_PER_BYTE", 100, minimum=1)
KILN_UPLOAD_PLAUSIBLE_FREE_MEGAPIXELS = env_int(_env, "KILN_UPLOAD_PLAUSIBLE_FREE_MEGAPIXELS", 4, minimum=0)
# Checked from the header before decoding: a decompression bomb fails without allocating its pixels.
KILN_IMAGE_MAX_MEGAPIXELS = env_int(_env, "KILN_IMAGE_MAX_MEGAPIXELS", 50, minimum=1)
# Address-space cap of each worker pool process: a file that would need more fails as an error (a
# MemoryError in that job) instead of the kernel's OOM killer taking the whole worker. 0 turns it off.
KILN_WORKER_MEMORY_LIMIT_MB = env_int(_env, "KILN_WORKER_MEMORY_LIMIT_MB", 2048, minimum=0)
# Images still pending this long after their last dispatch (broker down at upload, a lost message)
# are dispatched again by the periodic sweep.
KILN_PENDING_REDISPATCH_MINUTES = env_int(_env, "KILN_PENDING_REDISPATCH_MINUTES", 10, minimum=1)
# How often the sweep looks for images left pending; an image whose dispatch never got through (the broker
# was down at upload) is dispatched once it is this old, so the upload's own dispatch had its chance.
KILN_PENDING_SWEEP_SECONDS = env_int(_env, "KILN_PENDING_SWEEP_SECONDS", 60, minimum=1, maximum=3600)
# Transient failures (storage, database) retry after these delays, then the job fails for good.
KILN_THUMBNAIL_RETRY_DELAYS = (10, 30, 60)
# A purge run whose media store fails carries on from its cursor after these delays, then fails with the
# reason (and can be resumed from there: `manage.py purge resume RUN`).
KILN_PURGE_RETRY_DELAYS = (10, 30, 60)

# --- Outbox -----------------------------------------------------------------------------------------
# Every task is written to the outbox in its change's transaction and published after commit
# (outbox/services.py). How often the sweep publishes what a broker outage left there:
KILN_OUTBOX_SWEEP_SECONDS = env_int(_env, "KILN_OUTBOX_SWEEP_SECONDS", 30, minimum=1, maximum=3600)
# An intent is published again by the sweep only this long after it was written and after its last attempt:
# a publish still under way, or one that timed out but reached Redis (whose copy a worker then starts),
# is not sent twice in the common case; the worker runs one copy whatever happens.
KILN_OUTBOX_GRACE_SECONDS = env_int(_env, "KILN_OUTBOX_GRACE_SECONDS", 30, minimum=0, maximum=3600)
# `jobs health` and `jobs status` warn about intents left unpublished longer than this.
KILN_OUTBOX_WARN_SECONDS = env_int(_env, "KILN_OUTBOX_WARN_SECONDS", 300, minimum=1)

# --- Purges -----------------------------------------------------------------------------------------
# A purge task works this long, then hands the rest of its run to a follow-up task: well inside the
# `default` queue's 280 s soft limit, so no run is ever killed mid-batch by its time limit.
KILN_PURGE_TASK_BUDGET_SECONDS = env_int(_env, "KILN_PURGE_TASK_BUDGET_SECONDS", 240, minimum=1, maximum=270)

# A worker whose lease has not been renewed for this long is dead, and its unacknowledged jobs go back to
# their queues (broker/recovery.py) instead of waiting out KILN_VISIBILITY_TIMEOUT. 0 turns this off.
KILN_WORKER_DEAD_AFTER_SECONDS = env_int(_env, "KILN_WORKER_DEAD_AFTER_SECONDS", 30, minimum=0, maximum=600)
if 0 < KILN_WORKER_DEAD_AFTER_SECONDS < 3:
    # The lease of the reliable fetch must outlive its 1 s wait for a message by 2 s (broker/transport.py).
    raise ImproperlyConfigured(
        f"KILN_WORKER_DEAD_AFTER_SECONDS must be 0 (off) or at least 3, got {KILN_WORKER_DEAD_AFTER_SECONDS}"
    )

# --- Jobs: history, health, alerts, metrics --------------------------------------------------------
# Every published task gets a row in jobs.Job, written in bulk from Celery's signals (jobs/history.py).
KILN_JOB_HISTORY = env_bool(_env, "KILN_JOB_HISTORY", True)
# Arguments larger than this (as JSON) are not kept; such a job cannot be retried from its record.
KILN_JOB_ARGS_MAX_BYTES = env_int(_env, "KILN_JOB_ARGS_MAX_BYTES", 16384, minimum=256)
# The seeds' health indicators: queue size 1000/5000 and failed jobs 10/50 for warning/critical, and a
# queue whose jobs wait this long with nothing running is `stalled` (its workers may be stopped).
KILN_HEALTH_DEPTH_WARNING = env_int(_env, "KILN_HEALTH_DEPTH_WARNING", 1000, minimum=1)
KILN_HEALTH_DEPTH_CRITICAL = env_int(_env, "KILN_HEALTH_DEPTH_CRITICAL", 5000, minimum=1)
KILN_HEALTH_FAILED_WARNING = env_int(_env, "KILN_HEALTH_FAILED_WARNING", 10, minimum=1)
KILN_HEALTH_FAILED_CRITICAL = env_int(_env, "KILN_HEALTH_FAILED_CRITICAL", 50, minimum=1)
KILN_HEALTH_STALLED_SECONDS = env_int(_env, "KILN_HEALTH_STALLED_SECONDS", 30, minimum=1)
# How often the jobs dashboard refreshes its figures in the browser.
KILN_DASHBOARD_REFRESH_SECONDS = env_int(_env, "KILN_DASHBOARD_REFRESH_SECONDS", 5, minimum=1, maximum=300)
# An alert is mailed to ADMINS (and posted to the webhook) once, then again only after the cooldown
# while its condition holds.
KILN_ALERT_COOLDOWN_MINUTES = env_int(_env, "KILN_ALERT_COOLDOWN_MINUTES", 60, minimum=1)
KILN_ALERT_WEBHOOK_URL = env_str(_env, "KILN_ALERT_WEBHOOK_URL", "")
ADMINS = env_admins(_env, "KILN_ADMINS")
# Every beat entry is watched (jobs/schedules.py): a run not started this many seconds after its slot is
# late (a `jobs health` warning, the alert `schedule:<name>`, /metrics). An entry not named here gets twice
# its interval, at least 3 and at most 10 minutes: the every-minute sweep 3 min, the nightly purge 10 min.
# By entry name, as the admin lists it: `purge: nightly=1800,jobs: alert check=300`.
KILN_SCHEDULE_GRACE = env_int_map(
    _env, "KILN_SCHEDULE_GRACE", {}, example="purge: nightly=1800,jobs: alert check=300", minimum=1
)
# /metrics answers these addresses, or any request carrying `Authorization: Bearer <KILN_METRICS_TOKEN>`.
KILN_METRICS_TOKEN = env_str(_env, "KILN_METRICS_TOKEN", "")
KILN_METRICS_ALLOWED_IPS = env_list(_env, "KILN_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])

# Mail (alerts). With DEBUG on, mails are written as files under KILN_VAR_DIR/mail instead of sent.
EMAIL_BACKEND = env_str(
    _env,
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = KILN_VAR_DIR / "mail"
EMAIL_HOST = env_str(_env, "EMAIL_HOST", "localhost")
EMAIL_PORT = env_port(_env, "EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str(_env, "EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str(_env, "EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool(_env, "EMAIL_USE_TLS", False)
SERVER_EMAIL = env_str(_env, "SERVER_EMAIL", "kiln@localhost")
EMAIL_SUBJECT_PREFIX = "[Kiln] "

# The admin user `manage.py kiln setup` makes sure exists (a random password is printed if none is given).
KILN_SUPERUSER_USERNAME = env_str(_env, "DJANGO_SUPERUSER_USERNAME", "admin")
KILN_SUPERUSER_PASSWORD = _env.get("DJANGO_SUPERUSER_PASSWORD", "")
KILN_SUPERUSER_EMAIL = env_str(_env, "DJANGO_SUPERUSER_EMAIL", "admin@localhost")

LOG_LEVEL = env_str(_env, "LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}"
    )
# Credentials never appear in clear in a debug page, an error mail or a log line (config/secrets.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.secrets.ExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "config.secrets.ExceptionReporter"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "config.secrets.MaskingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # django-axes notes every login at INFO; Kiln logs the lockouts itself (accounts/throttle.py).
    "loggers": {"axes": {"level": "WARNING"}},
}

# --- Celery ---------------------------------------------------------------------------------------
_longest_time_limit = longest_time_limit(KILN_QUEUES)
# An unacknowledged message goes back to its queue after this long. It must exceed every time limit,
# or a long job still running is handed to a second worker. It is also how long a SIGKILLed worker's
# jobs wait before they are redelivered.
KILN_VISIBILITY_TIMEOUT = env_int(_env, "KILN_VISIBILITY_TIMEOUT", 3600, minimum=1)
if KILN_VISIBILITY_TIMEOUT <= _longest_time_limit:
    raise ImproperlyConfigured(
        f"KILN_VISIBILITY_TIMEOUT must be above the longest task time limit ({_longest_time_limit} s), "
        f"got {KILN_VISIBILITY_TIMEOUT}"
    )

CELERY_BROKER_URL = REDIS_URL
# Celery's Redis backend, made safe on one path that loses jobs when Redis is down (broker/results.py). Its
# URL names a unix socket `socket://` where kombu says `redis+socket://`.
CELERY_RESULT_BACKEND = "broker.results:KilnRedisBackend+" + (
    "socket://" + REDIS_URL.removeprefix("redis+socket://")
    if REDIS_URL.startswith("redis+socket://")
    else REDIS_URL
)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": KILN_VISIBILITY_TIMEOUT,
    # One Redis list per queue: Kiln's priorities are its queues, and a consumer of one list fetches with a
    # blocking BLMOVE (broker/transport.py); kombu's default, four priority steps, would be four lists.
    "priority_steps": [0],
    # How long a worker's lease and a fetcher's lease last (broker/lease.py, broker/transport.py): a dead
    # worker's jobs, and a message taken by a consumer that died (or lost its connection) before recording
    # it, go back to their queue within about this long; 0 turns both off (kombu's own BRPOP fetch).
    "kiln_dead_after": KILN_WORKER_DEAD_AFTER_SECONDS,
    # A command on a connection Redis dropped without closing it (failover, a NAT timeout) fails after 10 s
    # instead of hanging the worker's event loop for ever (kombu's default); well above the 1 s fetch wait.
    "socket_timeout": 10,
    # A publisher (the web app at upload time) gives up on an unreachable broker after ~0.5 s instead
    # of kombu's default ~6 s: the upload is kept pending and the sweep dispatches it later. Workers
    # reconnect by their own, unlimited policy (broker_connection_retry).
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Same value for the result backend: chords and unacked bookkeeping must agree with the broker.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": KILN_VISIBILITY_TIMEOUT}
CELERY_RESULT_EXPIRES = 24 * 3600
# Kiln's tasks record their outcome in the database (image status, purge runs), not in the result
# backend: publishing then never waits on a result subscription. A task that needs one opts in.
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Queues, routes and time limits follow KILN_QUEUES; a task no route names goes to `default`.
CELERY_TASK_DEFAULT_QUEUE = "default"
KILN_QUEUES = queues_check(KILN_QUEUES, default=CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_QUEUES = celery_queues(KILN_QUEUES)
CELERY_TASK_ROUTES = celery_routes(KILN_QUEUES)
CELERY_TASK_ANNOTATIONS = ("config.queues.QueueTimeLimits",)

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# At least once: acknowledge after the task ran, give the message back when its process dies, and let
# each process reserve one message only, so a busy process never sits on jobs an idle one could take.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A job whose pool process dies (the OOM killer, a crash, a poison pill that kills its own process) is
# retried like a failure, counting against the task's max_retries (3 unless the task says otherwise), after
# KILN_WORKER_LOST_RETRY_SECONDS; once they are spent it fails for good ("worker lost N times") instead of
# being handed back forever. A job that never started (its worker died before) is not counted.
CELERY_TASK_RETRY_ON_WORKER_LOST = True
KILN_WORKER_LOST_RETRY_SECONDS = env_int(_env, "KILN_WORKER_LOST_RETRY_SECONDS", 10, minimum=0, maximum=600)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# On a lost broker connection the running jobs finish. Cancelling them (Celery's option) kills their pool
# processes while the event loop is stopped, and Celery 5.7's prefork pool does not survive that
# reliably on reconnection: the worker exited, or blocked reading a dead process's pipe (both found by
# tests/faults/test_redis_kills.py). A job running at the cut stays in `unacked`; its result is handled
# once the worker has reconnected, and the worker's lease connection acknowledges it (its own channel is
# closed). Should that fail too (Redis gone again), the worker's recovery runs it again (at least once).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Celery's consumer, telling Kiln's transport when a connection was lost (broker/worker.py).
CELERY_WORKER_CONSUMER = "broker.worker:Consumer"
# Every task gets its queue's limits (QueueTimeLimits); these apply to one sent to an undeclared queue.
CELERY_TASK_TIME_LIMIT = max(queue.time_limit for queue in KILN_QUEUES)
CELERY_TASK_SOFT_TIME_LIMIT = max(queue.soft_time_limit for queue in KILN_QUEUES)

# Recycle pool processes like the seeds' Horizon workers (max jobs, 256 MB): a leak cannot grow forever.
CELERY_WORKER_MAX_TASKS_PER_CHILD = 1000
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 256 * 1024  # KiB

# Flower sees every task from publish to finish.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

CELERY_TIMEZONE = TIME_ZONE
# django-celery-beat's DatabaseScheduler, which claims each entry's slot in the database before it sends it
# (jobs/beat.py: no slot runs twice, even from two beats at once), and sends through the outbox (outbox/beat.py:
# a slot due while the broker is down is kept as an intent, not lost).
CELERY_BEAT_SCHEDULER = "jobs.beat:SlotClaimingScheduler"
# Beat writes an entry's last_run_at as it sends the task, not up to 3 minutes later (Celery's sync_every):
# the schedule watch reads it as the proof that beat sent the run (jobs/schedules.py). One small UPDATE per
# run sent.
CELERY_BEAT_SYNC_EVERY = 1
# Beat runs on every web host; a leader lock in Redis elects the one that schedules (`manage.py kiln elect`,
# single-beat). The leader renews the lock every KILN_BEAT_HEARTBEAT_SECONDS; when it dies, its lock expires
# KILN_BEAT_LOCK_SECONDS after the last renewal and the next host to try takes over (within a heartbeat, plus
# beat's start). A leader that just took the lock holds it twice the lock time before its first renewal, so the
# worst takeover is 2 * 20 + 5 s plus beat's start, under a minute; a shorter lock trades that for more
# Redis writes and less patience with a slow host.
KILN_BEAT_LOCK_SECONDS = env_int(_env, "KILN_BEAT_LOCK_SECONDS", 20, minimum=2, maximum=3600)
KILN_BEAT_HEARTBEAT_SECONDS = env_int(_env, "KILN_BEAT_HEARTBEAT_SECONDS", 5, minimum=1)
if KILN_BEAT_HEARTBEAT_SECONDS >= KILN_BEAT_LOCK_SECONDS / 2:
    # single-beat refuses it too: a lock renewed less than twice per lifetime expires under a live leader.
    raise ImproperlyConfigured(
        f"KILN_BEAT_HEARTBEAT_SECONDS must be below half of KILN_BEAT_LOCK_SECONDS ({KILN_BEAT_LOCK_SECONDS}), "
        f"got {KILN_BEAT_HEARTBEAT_SECONDS}"
    )
# The lock's Redis key is SINGLE_BEAT_<name>: installations sharing one Redis database need different names.
KILN_BEAT_LOCK_NAME = env_str(_env, "KILN_BEAT_LOCK_NAME", "kiln-beat")
# Written into the lock, so `redis-cli get SINGLE_BEAT_kiln-beat` says which host leads.
KILN_BEAT_HOST = env_str(_env, "KILN_BEAT_HOST", socket.gethostname())
# Fixed periodic tasks, declared here once: django-celery-beat writes them to its tables at every beat start
# (an edit in the admin lasts until then). The nightly purge is not here: its time is the admin's to move,
# so purge/ installs it once, after migrate, and never overwrites it.
CELERY_BEAT_SCHEDULE = {
    "thumbnails: dispatch images left pending": {
        "task": "thumbnails.tasks.pending_sweep",
        "schedule": float(KILN_PENDING_SWEEP_SECONDS),
    },
    "jobs: alert check": {"task": "jobs.tasks.alerts_check", "schedule": 60.0},
    "outbox: publish what an outage left": {
        "task": "outbox.tasks.sweep",
        "schedule": float(KILN_OUTBOX_SWEEP_SECONDS),
    },
}

# Where the home page and `make run` send people for Flower: straight to its port on a laptop, through
# nginx (behind Django's login) in production.
KILN_FLOWER_URL = env_str(
    _env, "KILN_FLOWER_URL", f"http://127.0.0.1:{KILN_FLOWER_PORT}/flower/" if DEBUG else "/flower/"
)
