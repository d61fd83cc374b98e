"""Settings shared by every environment, read from the environment (12-factor, django-environ)."""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A .env file is a convenience for local runs; real deployments set the environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the API docs page's assets, served locally (no CDN)
    "django_celery_beat",
    "django_htmx",
    "axes",  # sign-in lockout after repeated failures (see "Sign-in and tokens" below)
    "csp",
    "config.accounts",
    "incidents",
    "diagnostics",
    "diagnostics.integrity",
    "diagnostics.remediation",
    "diagnostics.detection",
    "comms",
    "postmortems",
]

MIDDLEWARE = [
    # X-Request-ID on every response and in log records; absolute Location and RateLimit-* on
    # API answers (config.api_headers). First, so every other answer gets them too.
    "config.api_headers.ApiHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before the status page's fast path, so its cached responses get the policy too.
    "csp.middleware.CSPMiddleware",
    # A NUL in the path, query string or body is a 400 before it can reach PostgreSQL.
    "config.middleware.RefuseNulMiddleware",
    # Serves the public status page from cache before sessions/auth/CSRF (comms.middleware).
    "comms.middleware.StatusPageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's, but an API write missing its trailing slash is a JSON 404 naming the path.
    "config.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into
    # config.accounts.views.locked_out.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# Quell's own database. scripts/ export DATABASE_URL after choosing a server; this default is
# the local server every development and CI machine runs.
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/quell"),
}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
DATABASES["default"].setdefault("OPTIONS", {})
# Connections per process are bounded by a psycopg pool (Django 5.1+): at most
# DATABASE_POOL_MAX_SIZE, opened on demand and closed after a minute idle. The Procfile sets it
# per process (web: one per gunicorn thread; worker and beat: one); README.md has the budget.
# 0 turns the pool off: then each thread opens its own connection and, with the default
# DATABASE_CONN_MAX_AGE=0, closes it at the end of each request or task.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=4)
if DATABASE_POOL_MAX_SIZE > 0:
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 0,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "max_idle": 60,
        # Seconds a request waits for a free connection before it fails.
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Statements run through config.kernel.sql (the API's token lookup and incident detail, a run's
# results) are prepared on the server after this many executions on a connection; the ORM's
# own statements are bound client-side and never prepared. "off" for a PgBouncer in
# transaction mode older than 1.21, which cannot keep prepared statements.
_prepare_threshold = env("DATABASE_PREPARE_THRESHOLD", default="5")
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
    None if _prepare_threshold.strip().lower() in ("off", "none", "") else int(_prepare_threshold)
)
DATABASES["default"]["TEST"] = {"NAME": env("DATABASE_TEST_NAME", default=None)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
# The organisation's time zone: used for business-day arithmetic and for display.
TIME_ZONE = env("QUELL_TIME_ZONE", default="UTC")
# One date style on every page, the admin's included (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Responders sign in on Quell's own page (templates/registration/login.html); logout is a POST.
LOGIN_URL = "/accounts/login/"

# --- Sign-in, tokens and headers (docs/security.md) -----------------------------------------
# Reverse proxies in front of Quell that append to QUELL_CLIENT_IP_HEADER (0: none; clients
# connect directly and REMOTE_ADDR is their address). Lockouts and rate limits count the address
# from config.accounts.client_ip. Production also trusts X-Forwarded-Proto only when this is
# above 0.
QUELL_TRUSTED_PROXY_COUNT = env.int("QUELL_TRUSTED_PROXY_COUNT", default=0)
QUELL_CLIENT_IP_HEADER = env("QUELL_CLIENT_IP_HEADER", default="X-Forwarded-For")
# django-axes: after QUELL_LOGIN_FAILURE_LIMIT failed sign-ins for one username from one
# address (web and admin sign-in alike), that pair is locked for QUELL_LOGIN_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("QUELL_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("QUELL_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.accounts.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "config.accounts.views.locked_out"
# Password reset requests per hour from one client address, and per account (e-mail address).
QUELL_PASSWORD_RESET_PER_HOUR_PER_ADDRESS = env.int(
    "QUELL_PASSWORD_RESET_PER_HOUR_PER_ADDRESS", default=5
)
QUELL_PASSWORD_RESET_PER_HOUR_PER_ACCOUNT = env.int(
    "QUELL_PASSWORD_RESET_PER_HOUR_PER_ACCOUNT", default=3
)
# Content-Security-Policy (django-csp 4): scripts and styles from Quell's own origin only, no
# inline code; the API docs page relaxes styles for Swagger UI (config/urls.py).
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
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Mail ---------------------------------------------------------------------------------
# Outgoing mail server as one URL (password percent-encoded): smtp://host:25,
# smtp+tls://user:password@host:587 or smtp+ssl://user:password@host:465. Unset: Django's
# defaults (localhost:25). The backend itself is chosen per environment (test: in memory).
_email = env.email_url("EMAIL_URL", default="smtp://localhost:25")
EMAIL_HOST = _email["EMAIL_HOST"]
EMAIL_PORT = _email["EMAIL_PORT"]
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="webmaster@localhost")
SERVER_EMAIL = env("DJANGO_SERVER_EMAIL", default="root@localhost")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The API reads JSON only (415 otherwise), as its schema says: form encodings cannot carry
    # null or nested objects, and generated clients would send them.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # DRF's JSON renderer on orjson (the same document, encoded in C), and the browsable API.
    "DEFAULT_RENDERER_CLASSES": [
        "config.kernel.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Hashed API tokens (config.accounts.models.ApiToken), read with the user's groups in
        # one query.
        "config.accounts.authentication.QuellTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["config.kernel.permissions.IsViewer"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # Every list pages the same way (page_size 1-200, unknown parameters refused).
    "DEFAULT_PAGINATION_CLASS": "config.kernel.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "incidents.api.schema.QuellAutoSchema",
    "EXCEPTION_HANDLER": "config.kernel.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Per client address without credentials, per user with them; alert webhooks have their
    # own, stricter scope. Counted in the shared cache; 429 with Retry-After when exceeded.
    "DEFAULT_THROTTLE_CLASSES": [
        "config.accounts.throttles.AnonThrottle",
        "config.accounts.throttles.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("QUELL_THROTTLE_ANON", default="120/minute"),
        "user": env("QUELL_THROTTLE_USER", default="6000/minute"),
        "alerts": env("QUELL_THROTTLE_ALERTS", default="120/minute"),
    },
}
# A process reserves up to this many requests of a throttle window per Redis round trip (a
# hundredth of the limit at most: config.accounts.throttles). 1 counts every request in Redis.
QUELL_THROTTLE_MAX_BATCH = env.int("QUELL_THROTTLE_MAX_BATCH", default=10)
SPECTACULAR_SETTINGS = {
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Every operation's common error answers (400, 401, 403, 404, 415, 429), declared once.
        "config.openapi.add_common_error_responses",
        # anyOf for unions (blank-or-URL, blank-or-null choices); the standard response
        # headers (X-Request-ID, RateLimit-*, Location on 201, Retry-After on 429).
        "config.openapi_conventions.any_of_unions",
        "config.openapi_conventions.standard_headers",
    ],
    "TITLE": "Quell API",
    "DESCRIPTION": "Incident response for database incidents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from drf_spectacular_sidecar's static files: the docs page works offline and
    # loads nothing from a third-party CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Distinct names for the incidents app's choice sets, so fields called "status" or "kind"
    # in other apps do not collide with them in the schema.
    "ENUM_NAME_OVERRIDES": {
        "IncidentStatusEnum": "incidents.models.Status",
        "IncidentKindEnum": "incidents.models.Kind",
        "SeverityEnum": "incidents.severity.Severity",
        "DetectionSourceEnum": "incidents.models.DetectionSource",
        "ResponderRoleEnum": "incidents.models.ResponderRole",
        "TimelineEventKindEnum": "incidents.models.EventKind",
        "DiagnosticRunStatusEnum": "diagnostics.models.RunStatus",
        "CheckResultStatusEnum": "diagnostics.models.ResultStatus",
        "TargetEnvironmentEnum": "diagnostics.models.Environment",
        "TargetSslmodeEnum": "diagnostics.models.SSLMode",
        "DiagnosticRunTriggerEnum": "diagnostics.models.Trigger",
        "RemediationKindEnum": "diagnostics.remediation.models.RemediationKind",
        "RemediationStatusEnum": "diagnostics.remediation.models.RemediationStatus",
        "BackendStateEnum": "diagnostics.remediation.backends.STATES",
        "RemediationOutcomeEnum": "diagnostics.remediation.backends.OUTCOMES",
        "RunbookStepActionEnum": "diagnostics.remediation.models.StepAction",
        "IntegrityCheckKindEnum": "diagnostics.integrity.models.IntegrityKind",
        "IntegrityCheckSeverityEnum": "diagnostics.integrity.models.IntegritySeverity",
        "IntegrityRunPurposeEnum": "diagnostics.integrity.models.IntegrityPurpose",
        "IntegrityResultStatusEnum": "diagnostics.integrity.models.IntegrityResultStatus",
        "PostmortemStatusEnum": "postmortems.models.PostmortemStatus",
        "ActionItemStatusEnum": "postmortems.models.ActionStatus",
        "ActionItemCategoryEnum": "postmortems.models.ActionCategory",
        "ReviewStatusEnum": "postmortems.models.ReviewStatus",
        "CommsAudienceEnum": "comms.models.Audience",
        "ChannelAudienceEnum": "comms.models.ChannelAudience",
        "ChannelKindEnum": "comms.models.ChannelKind",
        "DeliveryKindEnum": "comms.models.DeliveryKind",
        "DeliveryStateEnum": "comms.models.DeliveryState",
        "ComponentStateEnum": "comms.models.ComponentState",
        "StatusUpdateStateEnum": "comms.models.UpdateState",
        "PublicStatusEnum": "comms.models.PUBLIC_STATUS_CHOICES",
        "TriageNodeKindEnum": "incidents.triage.models.NodeKind",
        "TriageTreeStatusEnum": "incidents.triage.models.TreeStatus",
        "TriageWalkStatusEnum": "incidents.triage.models.WalkStatus",
        "TriageActionEnum": "incidents.triage.models.ACTION_CHOICES",
        "TriageSuggestionOutcomeEnum": "incidents.triage.models.SUGGESTION_CHOICES",
    },
}

# --- Celery -------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that is down or accepts connections and never answers must not hang a request that
# sends a task: connect and socket timeouts on every broker connection, and a publish retried
# once at once. A failed send costs about QUELL_BROKER_TIMEOUT_S (3 s at most) and the task is
# parked in the database (incidents.dispatch); after a failure a process parks tasks without
# asking the broker for QUELL_BROKER_BACKOFF_S.
QUELL_BROKER_TIMEOUT_S = env.float("QUELL_BROKER_TIMEOUT_S", default=1.0)
QUELL_BROKER_BACKOFF_S = env.float("QUELL_BROKER_BACKOFF_S", default=5.0)
CELERY_BROKER_CONNECTION_TIMEOUT = QUELL_BROKER_TIMEOUT_S
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": QUELL_BROKER_TIMEOUT_S,
    "socket_timeout": QUELL_BROKER_TIMEOUT_S,
    # kombu's ensure_connection for a producer: retry once, not forever.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Periodic schedules are declared in code: each app's block below adds its entries, and
# django-celery-beat's DatabaseScheduler shows them in the admin.
CELERY_BEAT_SCHEDULE: dict = {}
# Tasks parked while the broker was unavailable are sent again this often (and when a worker
# becomes ready).
CELERY_BEAT_SCHEDULE["incidents-dispatch-parked"] = {
    "task": "incidents.dispatch_parked",
    "schedule": env.int("QUELL_DISPATCH_SWEEP_INTERVAL_S", default=30),
}
# Idempotency-Key records answer repeats for 24 hours (config.accounts.idempotency); older ones
# are deleted hourly (lookups ignore them already).
CELERY_BEAT_SCHEDULE["accounts-idempotency-expire"] = {
    "task": "accounts.idempotency_expire",
    "schedule": 3600,
}

# --- Quell --------------------------------------------------------------------------------
# The severity policy (incidents.severity.severity_policy): per severity, any of
# required_roles, bridge, stakeholders, postmortem, review, update_cadence. A field left out
# comes from the older setting named beside it below; the system check quell.E00x refuses
# unknown severities or roles, missing severities and negative durations at start-up.
QUELL_SEVERITY_POLICY = env.json("QUELL_SEVERITY_POLICY", default={})
# Roles each severity requires before the response is fully staffed (playbook: Assemble
# Response Team; severity policy field required_roles).
QUELL_REQUIRED_ROLES = env.json(
    "QUELL_REQUIRED_ROLES",
    default={
        "SEV1": ["incident_commander", "technical_lead", "operations_lead", "communications_lead"],
        "SEV2": ["incident_commander", "technical_lead", "operations_lead", "communications_lead"],
        "SEV3": ["incident_commander", "technical_lead"],
        "SEV4": ["incident_commander"],
    },
)
# Callables (dotted paths) asked before an incident closes; each returns None or the reason it
# may not close yet. The default keeps incidents open until their postmortem is published or
# waived (DESIGN: "closed once the postmortem is published or waived").
QUELL_CLOSE_GUARDS = env.list(
    "QUELL_CLOSE_GUARDS", default=["postmortems.guards.postmortem_settled_before_close"]
)
# Callables (dotted paths) proposing triage answers from what other apps know; each gets the
# incident id and returns {question key: {"answer", "evidence", "run_url"}}. First one wins.
QUELL_TRIAGE_ANSWER_PROVIDERS = env.list(
    "QUELL_TRIAGE_ANSWER_PROVIDERS", default=["diagnostics.triage.suggest_answers"]
)
# Video bridge for SEV1/SEV2; "{slug}" and "{id}" are filled from the incident. Empty: none.
QUELL_BRIDGE_URL_TEMPLATE = env("QUELL_BRIDGE_URL_TEMPLATE", default="")
# Severities that get a bridge (severity policy field bridge).
QUELL_BRIDGE_SEVERITIES = env.list("QUELL_BRIDGE_SEVERITIES", default=["SEV1", "SEV2"])
# Stakeholder notification lists by severity (playbook: notify stakeholders based on severity;
# severity policy field stakeholders).
QUELL_STAKEHOLDERS = env.json(
    "QUELL_STAKEHOLDERS",
    default={"SEV1": [], "SEV2": [], "SEV3": [], "SEV4": []},
)
QUELL_BASE_URL = env("QUELL_BASE_URL", default="http://127.0.0.1:8000")
# Bearer token that Prometheus must send to scrape /metrics. Empty: the endpoint is disabled (404).
QUELL_METRICS_TOKEN = env("QUELL_METRICS_TOKEN", default="")
# Seconds the insights page (/insights/) reuses its computed figures; 0 computes on every view.
QUELL_INSIGHTS_CACHE_SECONDS = env.int("QUELL_INSIGHTS_CACHE_SECONDS", default=60)

# --- Diagnostics ----------------------------------------------------------------------------
# Fernet keys encrypting target credentials, comma-separated, newest first (MultiFernet: the
# first encrypts, all decrypt; `manage.py quell_rotate_keys` re-encrypts with the first).
# Dev and test settings derive one from SECRET_KEY when unset; production requires it.
QUELL_FERNET_KEYS = env.list("QUELL_FERNET_KEYS", default=[])
# Bounds for every diagnostic connection (diagnostics.target.Timeouts).
QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S = env.float("QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S", default=5.0)
QUELL_DIAGNOSTICS_STATEMENT_TIMEOUT_MS = env.int(
    "QUELL_DIAGNOSTICS_STATEMENT_TIMEOUT_MS", default=5000
)
QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS = env.int("QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS", default=100)
# Remediation (cancel/terminate): a preview older than this must be taken again before it is
# executed; how long to wait for a signalled backend to let go; the default grace period of
# "cancel, then terminate".
QUELL_REMEDIATION_PREVIEW_TTL_S = env.int("QUELL_REMEDIATION_PREVIEW_TTL_S", default=600)
QUELL_REMEDIATION_CONFIRM_TIMEOUT_S = env.float("QUELL_REMEDIATION_CONFIRM_TIMEOUT_S", default=5.0)
QUELL_REMEDIATION_GRACE_S = env.int("QUELL_REMEDIATION_GRACE_S", default=30)
# "Cancel, then terminate" whose escalation task never arrived (broker outage) is escalated by
# this sweep.
CELERY_BEAT_SCHEDULE["diagnostics-remediation-escalations-due"] = {
    "task": "diagnostics.remediation_escalations_due",
    "schedule": 60,
}
# A run still queued this long after it was queued (or still running this long after it started)
# is re-queued once by the sweep, then failed.
QUELL_DIAGNOSTICS_QUEUE_DEADLINE_S = env.int("QUELL_DIAGNOSTICS_QUEUE_DEADLINE_S", default=600)
QUELL_DIAGNOSTICS_RUN_DEADLINE_S = env.int(
    "QUELL_DIAGNOSTICS_RUN_DEADLINE_S", default=CELERY_TASK_TIME_LIMIT + 60
)
CELERY_BEAT_SCHEDULE["diagnostics-sweep-stuck-runs"] = {
    "task": "diagnostics.sweep_stuck_runs",
    "schedule": env.int("QUELL_DIAGNOSTICS_SWEEP_INTERVAL_S", default=60),
}
# Data integrity checks: the statement timeout of each check (a check may ask for more, up to
# the maximum), and how many identifying rows a result keeps as its sample.
QUELL_INTEGRITY_STATEMENT_TIMEOUT_MS = env.int(
    "QUELL_INTEGRITY_STATEMENT_TIMEOUT_MS", default=30000
)
QUELL_INTEGRITY_MAX_STATEMENT_TIMEOUT_MS = env.int(
    "QUELL_INTEGRITY_MAX_STATEMENT_TIMEOUT_MS", default=120000
)
QUELL_INTEGRITY_SAMPLE_ROWS = env.int("QUELL_INTEGRITY_SAMPLE_ROWS", default=20)
# Suggested checks infer references without foreign keys from sampled values: each probe's
# statement timeout, the most (column, table) pairs probed, and the time all probes may take
# (suggestions are computed while the responder waits).
QUELL_INTEGRITY_INFER_PROBE_TIMEOUT_MS = env.int(
    "QUELL_INTEGRITY_INFER_PROBE_TIMEOUT_MS", default=500
)
QUELL_INTEGRITY_INFER_MAX_PAIRS = env.int("QUELL_INTEGRITY_INFER_MAX_PAIRS", default=200)
QUELL_INTEGRITY_INFER_BUDGET_MS = env.int("QUELL_INTEGRITY_INFER_BUDGET_MS", default=10000)
CELERY_BEAT_SCHEDULE["diagnostics-sweep-stuck-integrity-runs"] = {
    "task": "diagnostics.sweep_stuck_integrity_runs",
    "schedule": env.int("QUELL_DIAGNOSTICS_SWEEP_INTERVAL_S", default=60),
}

# --- Detection: alerts and monitors (docs/detection.md) -------------------------------------
# Shared secret Alertmanager (or any sender) presents as `Authorization: Bearer <token>` or uses
# to sign the body (`X-Quell-Signature: t=<unix>,v1=<hex HMAC of "t.body">`). Empty: only API
# tokens of responder-level users are accepted.
QUELL_ALERT_WEBHOOK_TOKEN = env("QUELL_ALERT_WEBHOOK_TOKEN", default="")
# Seconds a signed alert's timestamp may differ from Quell's clock (replays are refused past it).
QUELL_ALERT_SIGNATURE_TOLERANCE_S = env.int("QUELL_ALERT_SIGNATURE_TOLERANCE_S", default=300)
# Alerts accepted in one payload; more is a 413 (Alertmanager: max_alerts in webhook_config).
QUELL_ALERTS_MAX_PER_PAYLOAD = env.int("QUELL_ALERTS_MAX_PER_PAYLOAD", default=1000)
# Alert severity label -> Quell severity; "<kind>:<label>" entries win for that kind. SEV1-SEV4
# given as the label are taken as they are.
QUELL_ALERT_SEVERITY_MAP = env.json(
    "QUELL_ALERT_SEVERITY_MAP",
    default={
        "availability:critical": "SEV1",
        "critical": "SEV2",
        "page": "SEV2",
        "high": "SEV2",
        "error": "SEV3",
        "warning": "SEV3",
        "medium": "SEV3",
        "low": "SEV4",
        "info": "SEV4",
        "none": "SEV4",
    },
)
# Severity of an alert whose severity label is missing or unknown.
QUELL_ALERT_DEFAULT_SEVERITY = env("QUELL_ALERT_DEFAULT_SEVERITY", default="SEV3")
# Alert name -> incident kind, for names the built-in keyword rules classify wrongly.
QUELL_ALERT_KIND_MAP = env.json("QUELL_ALERT_KIND_MAP", default={})
# A repeat of the same alert (or a persisting monitor breach) within this many seconds is
# counted, not written to the timeline again.
QUELL_DETECTION_REPEAT_WINDOW_S = env.int("QUELL_DETECTION_REPEAT_WINDOW_S", default=3600)
# Monitor rule overrides merged over diagnostics.detection.monitors.DEFAULT_RULES (JSON object).
QUELL_MONITOR_RULES = env.json("QUELL_MONITOR_RULES", default={})
# The built-in monitor sweeps every enabled target this often; 0 declares no built-in sweep
# (monitors are then only the PeriodicTask rows added in the admin).
QUELL_MONITOR_INTERVAL_S = env.int("QUELL_MONITOR_INTERVAL_S", default=60)
if QUELL_MONITOR_INTERVAL_S > 0:
    CELERY_BEAT_SCHEDULE["diagnostics-monitor"] = {
        "task": "diagnostics.monitor_sweep",
        "schedule": QUELL_MONITOR_INTERVAL_S,
        "kwargs": {"name": "default"},
        # A sweep still waiting in the queue after an interval is superseded by the next one.
        "options": {"expire_seconds": QUELL_MONITOR_INTERVAL_S},
    }
# Monitoring runs (and monitor integrity runs) older than this many days that no incident cites
# are deleted by an hourly task; 0 keeps them forever.
QUELL_MONITOR_RETENTION_DAYS = env.int("QUELL_MONITOR_RETENTION_DAYS", default=7)
CELERY_BEAT_SCHEDULE["diagnostics-monitor-prune"] = {
    "task": "diagnostics.monitor_prune",
    "schedule": 60 * 60,
}

# --- Postmortems ----------------------------------------------------------------------------
# Severities whose resolution opens a postmortem draft by itself (others can start one by hand)
# and that may not close without one (severity policy field postmortem).
QUELL_POSTMORTEM_SEVERITIES = env.list(
    "QUELL_POSTMORTEM_SEVERITIES", default=["SEV1", "SEV2", "SEV3"]
)
# Review deadline after resolution by severity (after PagerDuty's practice): {"days": n,
# "business": bool}; null means no review is required (severity policy field review).
QUELL_REVIEW_POLICY = env.json(
    "QUELL_REVIEW_POLICY",
    default={
        "SEV1": {"days": 3, "business": False},
        "SEV2": {"days": 5, "business": True},
        "SEV3": {"days": 10, "business": True},
        "SEV4": None,
    },
)
# Public holidays skipped by business-day arithmetic: ISO dates, comma-separated.
QUELL_HOLIDAYS = env.list("QUELL_HOLIDAYS", default=[])
# Working hours in which review slots are proposed (organisation time zone), and their length.
QUELL_REVIEW_DAY_START = env("QUELL_REVIEW_DAY_START", default="10:00")
QUELL_REVIEW_DAY_END = env("QUELL_REVIEW_DAY_END", default="17:00")
QUELL_REVIEW_DURATION_MINUTES = env.int("QUELL_REVIEW_DURATION_MINUTES", default=60)
# How long before a review its reminder goes out.
QUELL_REVIEW_REMINDER_HOURS = env.int("QUELL_REVIEW_REMINDER_HOURS", default=24)
# The Django group whose members are invited to every review as database specialists.
QUELL_DATABASE_SPECIALISTS_GROUP = env(
    "QUELL_DATABASE_SPECIALISTS_GROUP", default="database-specialists"
)
# Sender of postmortem mail (invites, reminders) and organizer of review invites.
QUELL_POSTMORTEM_FROM_EMAIL = env("QUELL_POSTMORTEM_FROM_EMAIL", default="quell@localhost")
# How long an action item's check must keep passing, on consecutive runs, before the item
# closes (minutes; an item may set its own). Checks that verify a definition (an index now
# valid) need one pass.
QUELL_ACTION_ITEM_HOLD_MINUTES = env.int("QUELL_ACTION_ITEM_HOLD_MINUTES", default=10)
CELERY_BEAT_SCHEDULE["postmortems-review-reminders"] = {
    "task": "postmortems.send_review_reminders",
    "schedule": 15 * 60,
}
CELERY_BEAT_SCHEDULE["postmortems-review-deadlines"] = {
    "task": "postmortems.flag_missed_review_deadlines",
    "schedule": 60 * 60,
}
CELERY_BEAT_SCHEDULE["postmortems-overdue-action-items"] = {
    "task": "postmortems.remind_overdue_action_items",
    "schedule": 60 * 60,
}
# Verification runs of action items' checks finish in a worker; this settles the items and runs
# the check of holding items again when their window is up.
CELERY_BEAT_SCHEDULE["postmortems-settle-verifications"] = {
    "task": "postmortems.settle_action_item_verifications",
    "schedule": 60,
}

# --- Comms ----------------------------------------------------------------------------------
# The shared cache (Redis): the public status page is served from it.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("QUELL_CACHE_URL", default=REDIS_URL),
        "KEY_PREFIX": "quell",
        "TIMEOUT": 300,
        # A stalled Redis costs a request this long, then the cache's callers fall back.
        "OPTIONS": {
            "socket_connect_timeout": QUELL_BROKER_TIMEOUT_S,
            "socket_timeout": QUELL_BROKER_TIMEOUT_S,
        },
    }
}
# Send the internal initial notification when an incident is declared (to the channels routed
# for its severity).
QUELL_COMMS_NOTIFY_ON_DECLARE = env.bool("QUELL_COMMS_NOTIFY_ON_DECLARE", default=True)
# Next-update cadence by severity, in minutes (after PagerDuty's published practice):
# first_minutes = first external update after declaring, every_minutes = then every (severity
# policy field update_cadence). Empty: these defaults.
QUELL_UPDATE_CADENCE = env.json(
    "QUELL_UPDATE_CADENCE",
    default={
        "SEV1": {"first_minutes": 5, "every_minutes": 20},
        "SEV2": {"first_minutes": 5, "every_minutes": 60},
        "SEV3": {"every_minutes": 240},
        "SEV4": {},
    },
)
# Outbound requests (config/outbound.py, docs/security.md#outbound-requests): https only unless
# http is allowed (labs, tests); internal addresses refused unless listed here (CIDRs, e.g. a
# Mattermost on the LAN); everything confined to loopback for tests and fuzzing.
QUELL_OUTBOUND_ALLOW_HTTP = env.bool("QUELL_OUTBOUND_ALLOW_HTTP", default=False)
QUELL_OUTBOUND_ALLOWED_NETWORKS = env.list("QUELL_OUTBOUND_ALLOWED_NETWORKS", default=[])
QUELL_OUTBOUND_CONFINE_TO_LOOPBACK = env.bool("QUELL_OUTBOUND_CONFINE_TO_LOOPBACK", default=False)
# Deliveries: seconds a receiver (HTTP or SMTP) may take in all (one deadline per request);
# attempts before a delivery fails; exponential backoff between attempts (base * 2^(n-1), capped).
QUELL_COMMS_HTTP_TIMEOUT = env.float("QUELL_COMMS_HTTP_TIMEOUT", default=5.0)
QUELL_COMMS_MAX_ATTEMPTS = env.int("QUELL_COMMS_MAX_ATTEMPTS", default=6)
QUELL_COMMS_RETRY_BASE_SECONDS = env.float("QUELL_COMMS_RETRY_BASE_SECONDS", default=30.0)
QUELL_COMMS_RETRY_MAX_SECONDS = env.float("QUELL_COMMS_RETRY_MAX_SECONDS", default=3600.0)
# Sender address of comms e-mail (empty: DEFAULT_FROM_EMAIL).
QUELL_COMMS_FROM_EMAIL = env("QUELL_COMMS_FROM_EMAIL", default="")
# The public status page: name shown, days of history, cache lifetimes (shared cache, and
# per-process memory), and which cache alias holds it.
QUELL_STATUS_PAGE_NAME = env("QUELL_STATUS_PAGE_NAME", default="Quell")
QUELL_STATUS_PAGE_HISTORY_DAYS = env.int("QUELL_STATUS_PAGE_HISTORY_DAYS", default=90)
QUELL_STATUS_PAGE_CACHE_SECONDS = env.int("QUELL_STATUS_PAGE_CACHE_SECONDS", default=60)
QUELL_STATUS_PAGE_LOCAL_SECONDS = env.float("QUELL_STATUS_PAGE_LOCAL_SECONDS", default=1.0)
QUELL_STATUS_PAGE_CACHE_ALIAS = "default"
# Subscription requests one client address may make per hour (0: no limit).
QUELL_STATUS_SUBSCRIBE_PER_HOUR = env.int("QUELL_STATUS_SUBSCRIBE_PER_HOUR", default=10)
# While an update stays overdue, remind again this often.
QUELL_COMMS_REMINDER_REPEAT_MINUTES = env.int("QUELL_COMMS_REMINDER_REPEAT_MINUTES", default=15)
CELERY_BEAT_SCHEDULE["comms-reminders"] = {
    "task": "comms.reminders_send_due",
    "schedule": env.int("QUELL_COMMS_REMINDER_INTERVAL_S", default=60),
}
CELERY_BEAT_SCHEDULE["comms-resume-deliveries"] = {
    "task": "comms.deliveries_resume",
    "schedule": 120,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # request_id: the X-Request-ID of the request being served ("-" outside one).
    "filters": {"request_id": {"()": "config.api_headers.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
}
