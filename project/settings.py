"""Django settings for cloudsync, read from the environment (django-environ)."""

from pathlib import Path

import environ

from sync import names
from sync.gc_tuning import parse_thresholds

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-change-me-" + "x" * 32)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served locally, no CDN
    "django_celery_beat",
    "sync",
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

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "sync" / "templates"],
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

# SQLite by default (WAL + busy timeout so web, worker and beat can share the
# file); Postgres in production and tests via DATABASE_URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # A database that stopped answering is an outage to wait out, not a hang:
    # a connection is given up after DB_CONNECT_TIMEOUT seconds, and a kept
    # one whose peer went silent (a dropped NAT entry, a failover) after
    # about a minute (TCP keepalives for idle waits, tcp_user_timeout for
    # data the server never acknowledged) instead of the kernel's 15 minutes.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
    _options.setdefault("keepalives", 1)
    _options.setdefault("keepalives_idle", 30)
    _options.setdefault("keepalives_interval", 10)
    _options.setdefault("keepalives_count", 3)
    _options.setdefault("tcp_user_timeout", env.int("DB_TCP_USER_TIMEOUT_MS", default=60_000))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
# WhiteNoise warns "No directory at .../static/" on start when STATIC_ROOT does
# not exist (collectstatic never ran, as with `make run`, which serves static
# files through the finders below). An empty directory is all it needs.
try:
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
except OSError:  # read-only image: collectstatic created it, or it warns
    pass
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # `make run` serves static files without collectstatic
# Behind a TLS-terminating proxy (docker-compose production setups).
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The one-time secret shown after creating/rotating a provider travels in a
# message: keep messages server-side, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Redis / Celery -------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# kombu's Redis transport, repaired for connection loss (sync/broker_transport.py).
CELERY_BROKER_TRANSPORT = "sync.broker_transport:Transport"
# The result backend serves only the chords of split full syncs (Redis counts
# the finished parts and keeps their outcomes for the finish task); every task
# ignores its own result and no process subscribes to results
# (sync/result_backend.py). CELERY_RESULT_BACKEND: a Redis URL (default: the broker's).
CELERY_RESULT_BACKEND = "sync.result_backend:ChordBackend+" + env.str(
    "CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Events are consumed in batches (sync/batching.py): up to
# CLOUDSYNC_INGEST_BATCH_SIZE bodies per batch, or whatever arrived within
# CLOUDSYNC_INGEST_FLUSH_SECONDS. A worker reserves prefetch multiplier ×
# concurrency messages, which must exceed the batch size.
CLOUDSYNC_INGEST_BATCH_SIZE = env.int("CLOUDSYNC_INGEST_BATCH_SIZE", default=200)
CLOUDSYNC_INGEST_FLUSH_SECONDS = env.float("CLOUDSYNC_INGEST_FLUSH_SECONDS", default=0.2)
# A batch is also cut once its bodies add up to this many characters, so a
# backlog of large multi-message bodies is spread over the pool's processes.
CLOUDSYNC_INGEST_BATCH_BYTES = env.int("CLOUDSYNC_INGEST_BATCH_BYTES", default=512 * 1024)
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int(
    "CELERY_WORKER_PREFETCH_MULTIPLIER", default=CLOUDSYNC_INGEST_BATCH_SIZE
)
CELERY_TASK_TIME_LIMIT = env.int("CLOUDSYNC_TASK_TIME_LIMIT", default=3 * 3600)
# A pool process keeps its database connection from one task (one batch) to
# the next: Celery's Django fixup would close it after every task (and every
# message of a batch), and each batch would pay for a new Postgres backend
# and its cold caches. The fixup now closes it only every this many tasks;
# project/celery.py closes it sooner when it is older than CONN_MAX_AGE, when
# Django finds it unusable, or after a task that did not succeed.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=10_000)
# A message a worker took but never acknowledged (the worker died) goes back
# to its queue after this many seconds (kombu's Redis visibility timeout,
# checked every 10 s). Tasks may run longer: events are idempotent (inbox
# dedup + claim), and a redelivered full sync finds its run's heartbeat fresh
# and does nothing (sync/runs.py). docs/reliability.md explains the bound.
CLOUDSYNC_REDELIVERY_SECONDS = env.int("CLOUDSYNC_REDELIVERY_SECONDS", default=90)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CLOUDSYNC_REDELIVERY_SECONDS,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = names.EVENTS_QUEUE
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_WORKER_SEND_TASK_EVENTS = True  # Flower shows tasks as they run
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- cloudsync ------------------------------------------------------------
# Fernet key(s) for client_config and endpoint secrets, comma-separated, the
# first one encrypts (rotation: put the new key first). Derived from
# SECRET_KEY when unset, which is fine for development only.
CLOUDSYNC_ENCRYPTION_KEYS = env.list("CLOUDSYNC_ENCRYPTION_KEYS", default=[])
CLOUDSYNC_DRIVERS = env.list("CLOUDSYNC_DRIVERS", default=[])
CLOUDSYNC_MAX_BODY_BYTES = env.int("CLOUDSYNC_MAX_BODY_BYTES", default=1024 * 1024)
CLOUDSYNC_PROVIDER_CACHE_SECONDS = env.float("CLOUDSYNC_PROVIDER_CACHE_SECONDS", default=5.0)
CLOUDSYNC_RETRY_MAX = env.int("CLOUDSYNC_RETRY_MAX", default=8)
CLOUDSYNC_RETRY_BASE_SECONDS = env.float("CLOUDSYNC_RETRY_BASE_SECONDS", default=2.0)
# Retries wait in the broker as ETA messages, which Redis would hand out again
# after the visibility timeout: keep every wait below it.
CLOUDSYNC_RETRY_CAP_SECONDS = min(
    env.float("CLOUDSYNC_RETRY_CAP_SECONDS", default=60.0), CLOUDSYNC_REDELIVERY_SECONDS * 0.75
)
# While the database is unreachable a worker holds its message and waits
# (backoff up to CLOUDSYNC_DB_WAIT_CAP_SECONDS between checks, one log line per
# CLOUDSYNC_DB_LOG_SECONDS) for up to CLOUDSYNC_DB_OUTAGE_SECONDS, then hands
# the message back to the broker and keeps doing so until the database answers.
CLOUDSYNC_DB_OUTAGE_SECONDS = env.float("CLOUDSYNC_DB_OUTAGE_SECONDS", default=600.0)
CLOUDSYNC_DB_WAIT_CAP_SECONDS = env.float("CLOUDSYNC_DB_WAIT_CAP_SECONDS", default=10.0)
CLOUDSYNC_DB_LOG_SECONDS = env.float("CLOUDSYNC_DB_LOG_SECONDS", default=30.0)
# The sweeper (beat) re-queues inbox events left "queued" this long after their
# last attempt, and takes over runs whose heartbeat is older than
# CLOUDSYNC_RUN_STALE_SECONDS (heartbeats every CLOUDSYNC_RUN_HEARTBEAT_SECONDS).
CLOUDSYNC_SWEEP_SECONDS = env.int("CLOUDSYNC_SWEEP_SECONDS", default=15)
# Accepted messages in neither the queue nor kombu's unacknowledged set for
# this long are put back from the journal (sync/journal.py).
CLOUDSYNC_JOURNAL_RECOVER_SECONDS = env.float("CLOUDSYNC_JOURNAL_RECOVER_SECONDS", default=30.0)
CLOUDSYNC_STUCK_EVENT_SECONDS = env.int("CLOUDSYNC_STUCK_EVENT_SECONDS", default=300)
# The status page's per-minute event counts (sync.rollups) are kept this long
# (the sweeper drops older ones); the page shows the last 24 hours.
CLOUDSYNC_ROLLUP_KEEP_DAYS = env.int("CLOUDSYNC_ROLLUP_KEEP_DAYS", default=8)
CLOUDSYNC_RUN_HEARTBEAT_SECONDS = env.float("CLOUDSYNC_RUN_HEARTBEAT_SECONDS", default=15.0)
CLOUDSYNC_RUN_STALE_SECONDS = env.float("CLOUDSYNC_RUN_STALE_SECONDS", default=90.0)
# A running sync writes its progress (SyncRun.progress) at most this often.
CLOUDSYNC_RUN_PROGRESS_SECONDS = env.float("CLOUDSYNC_RUN_PROGRESS_SECONDS", default=1.0)
# /metrics (Prometheus): a bearer token, and/or the networks allowed to scrape
# without one (CIDRs; loopback by default). Empty networks and no token: closed.
CLOUDSYNC_METRICS_TOKEN = env.str("CLOUDSYNC_METRICS_TOKEN", default="")
CLOUDSYNC_METRICS_ALLOWED_NETWORKS = env.list(
    "CLOUDSYNC_METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"]
)
# The endpoint authenticates from its provider cache while the database is
# down, for providers it refreshed within this many seconds; others get 503.
CLOUDSYNC_PROVIDER_STALE_SECONDS = env.float("CLOUDSYNC_PROVIDER_STALE_SECONDS", default=900.0)
# Bodies nested deeper than this are refused with 400 (no RecursionError anywhere).
CLOUDSYNC_MAX_JSON_DEPTH = env.int("CLOUDSYNC_MAX_JSON_DEPTH", default=100)
CLOUDSYNC_MASS_DELETE_RATIO = env.float("CLOUDSYNC_MASS_DELETE_RATIO", default=0.2)
CLOUDSYNC_MASS_DELETE_MIN_COUNT = env.int("CLOUDSYNC_MASS_DELETE_MIN_COUNT", default=5)
CLOUDSYNC_SYNC_RETRY_MAX = env.int("CLOUDSYNC_SYNC_RETRY_MAX", default=4)
# A full sync is split into parts listed by parallel tasks (drivers that can,
# sync/split.py) once the provider's previous succeeded full sync counted this
# many objects; 0 (the default) never splits. Worth it only where the workers,
# the database and the cloud API have cores to spare (bench/fullsync.py --split).
CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS = env.int("CLOUDSYNC_FULL_SYNC_SPLIT_OBJECTS", default=0)
# A full listing skips, without loading them, the objects it finds exactly as
# the last listing that vouched for them left them (Postgres; sync/apply/digests.py).
# 0 compares every object, as before (for a comparison, or should a cloud's
# listing ever need every object re-applied).
CLOUDSYNC_LISTING_DIGESTS = env.bool("CLOUDSYNC_LISTING_DIGESTS", default=True)
CLOUDSYNC_FULL_SYNC_CRONTAB = env.str("CLOUDSYNC_FULL_SYNC_CRONTAB", default="30 2 * * *")
CLOUDSYNC_CATCH_UP_CRONTAB = env.str("CLOUDSYNC_CATCH_UP_CRONTAB", default="5 * * * *")
# The garbage collector's thresholds in worker processes (sync/gc_tuning.py):
# "gen0,gen1,gen2"; empty keeps CPython's (700,10,10). Parsed here, so a bad
# value stops every process at start with the reason.
CLOUDSYNC_GC_THRESHOLDS = parse_thresholds(
    env.str("CLOUDSYNC_GC_THRESHOLDS", default="10000,10,10")
)
# Object history (sync.apply.history): every change that altered an inventory
# object, written by apply() in bulk. 0 turns it off (benchmarks compare).
CLOUDSYNC_HISTORY = env.bool("CLOUDSYNC_HISTORY", default=True)
# Retention (sync/retention.py, a beat task; its schedule is installed once
# from CLOUDSYNC_PURGE_CRONTAB and editable in the admin). Processed and
# ignored inbox events are kept this many days (the dedup window), failed and
# dead ones longer; history; finished runs' stored plans; tombstones.
CLOUDSYNC_EVENT_RETENTION_DAYS = env.float("CLOUDSYNC_EVENT_RETENTION_DAYS", default=14)
CLOUDSYNC_FAILED_EVENT_RETENTION_DAYS = env.float("CLOUDSYNC_FAILED_EVENT_RETENTION_DAYS",
                                                  default=90)
CLOUDSYNC_HISTORY_RETENTION_DAYS = env.float("CLOUDSYNC_HISTORY_RETENTION_DAYS", default=365)
CLOUDSYNC_PLAN_RETENTION_DAYS = env.float("CLOUDSYNC_PLAN_RETENTION_DAYS", default=30)
CLOUDSYNC_TOMBSTONE_RETENTION_DAYS = env.float("CLOUDSYNC_TOMBSTONE_RETENTION_DAYS", default=30)
CLOUDSYNC_PURGE_BATCH = env.int("CLOUDSYNC_PURGE_BATCH", default=5000)
CLOUDSYNC_PURGE_CRONTAB = env.str("CLOUDSYNC_PURGE_CRONTAB", default="45 3 * * *")
# PostgreSQL: the purge rebuilds the inbox's indexes on id and received_at
# (REINDEX INDEX CONCURRENTLY) once the events it removed since the last
# rebuild reach this fraction of the inbox's rows (0: never). Failed events,
# kept longer, keep those indexes' old pages from ever emptying (see
# docs/architecture.md, *Retention*).
CLOUDSYNC_INBOX_REINDEX_FRACTION = env.float("CLOUDSYNC_INBOX_REINDEX_FRACTION", default=0.5)

# --- DRF ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "cloudsync API",
    "DESCRIPTION": "Cloud inventory (hosts, flavors, images, projects) kept in sync with OpenStack, AWS and custom clouds.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One enum name per choice list (several models have a "status"/"kind").
    "ENUM_NAME_OVERRIDES": {
        "HostStatusEnum": "sync.choices.HostStatusChoices",
        "HostIPKindEnum": "sync.choices.HostIPKindChoices",
        "EventStatusEnum": "sync.choices.EventStatusChoices",
        "SyncRunKindEnum": "sync.choices.SyncRunKindChoices",
        "SyncRunStatusEnum": "sync.choices.SyncRunStatusChoices",
        "SyncRunStartKindEnum": "sync.api.serializers.SYNC_RUN_START_KINDS",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_token": {"()": "project.logfilters.RedactTokenFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_token"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Access lines carry query strings, and ?token= is a secret: redacted
        # by a filter on the logger itself, so any handler gets the clean line.
        # runserver's access log: every request (2xx included, at INFO) through
        # the root's timestamped handler. Django's default sends it to a
        # handler without time and stops propagation, and once that handler
        # is replaced only WARNING+ (4xx/5xx) lines reached stderr.
        "django.server": {"filters": ["redact_token"], "level": "INFO", "propagate": True},
        "gunicorn.access": {"filters": ["redact_token"]},
    },
}
