"""Settings shared by every environment; per-concern modules are imported at the end.

https://docs.djangoproject.com/en/5.2/ref/settings/
"""
from .env import BASE_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "apps.operations.admin_config.SluiceAdminConfig",  # django.contrib.admin with the queue page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets, served locally
    "apps.operations",
    "apps.replicas",
    "apps.accounts",
    "apps.documents",
    "apps.retrieval",
    "apps.generation",
    "apps.query",  # the query path end to end: admission, caches, retrieve, generate, deliver
]

MIDDLEWARE = [
    "apps.operations.middleware.RequestMetricsMiddleware",  # outermost: times everything below
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # innermost: a view that fails because the database or Redis is down answers 503
    "apps.operations.middleware.UnavailableMiddleware",
]

ROOT_URLCONF = "ragproject.urls"
# ASGI middleware around the Django application (ragproject/asgi.py), innermost first:
# request bodies over the size limits are refused before Django reads them.
SLUICE_ASGI_WRAPPERS = ["apps.operations.api.bodylimit.BodySizeLimit"]
ASGI_APPLICATION = "ragproject.asgi.application"
WSGI_APPLICATION = "ragproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

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

# Static files are served by WhiteNoise from the web process (no separate web server needed).
STATIC_URL = "static/"
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# HTTP basic auth with a user's password: handy on the local stacks; in production, API
# keys (ragproject/settings/production.py turns it off unless asked).
SLUICE_API_BASIC_AUTH = env.bool("SLUICE_API_BASIC_AUTH", default=True)

# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # API keys (docs/access.md), the admin's session, and HTTP basic auth where
    # SLUICE_API_BASIC_AUTH allows it; never anonymous.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        *(["rest_framework.authentication.BasicAuthentication"] if SLUICE_API_BASIC_AUTH else []),
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Per-key rates on the shared Redis cache (apps/accounts/throttling.py); 429 + Retry-After.
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.accounts.throttling.KeyRateThrottle",
        "apps.accounts.throttling.AnonThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api": env.str("SLUICE_THROTTLE_RATE_API", default="1200/min"),
        "query": env.str("SLUICE_THROTTLE_RATE_QUERY", default="300/min"),
        "anon": env.str("SLUICE_THROTTLE_RATE_ANON", default="300/min"),
    },
    # How many reverse proxies' X-Forwarded-For entries to trust when identifying a client
    # (0: use the peer address, never a header a client can forge).
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=0),
    "DEFAULT_PAGINATION_CLASS": "apps.operations.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.operations.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The most items one page of a list may hold (?limit=); more is a 400.
SLUICE_PAGE_MAX_LIMIT = env.int("SLUICE_PAGE_MAX_LIMIT", default=500)

# OpenAPI 3 at /api/v1/schema/, Swagger UI at /api/v1/docs/, Redoc at /api/v1/redoc/
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Sluice API",
    "DESCRIPTION": "Retrieval-augmented generation over your document collections. Authenticate with "
                   "`Authorization: Api-Key <key>` (or `Bearer <key>`). Errors: `{\"error\": {\"code\", \"message\", \"fields\"?}}`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "DocumentStatusEnum": "apps.documents.models.Document.Status",
        "HealthStatusEnum": ["ok", "degraded", "unavailable"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.operations.api.schema.document_errors",
    ],
}

# Prometheus /metrics (apps/operations/metrics.py): a bearer token the scraper must send;
# without one, the endpoint is open only where SLUICE_METRICS_PUBLIC is true (local/test).
SLUICE_METRICS_TOKEN = env.str("SLUICE_METRICS_TOKEN", default="")
SLUICE_METRICS_PUBLIC = env.bool("SLUICE_METRICS_PUBLIC", default=False)

# OpenTelemetry tracing (apps/operations/tracing.py): on only when an OTLP endpoint is set
# (the standard OTEL_* variables configure the exporter); OTEL_SDK_DISABLED=true forces it off.
SLUICE_TRACING = bool(
    (env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="") or env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default=""))
    and not env.bool("OTEL_SDK_DISABLED", default=False)
)

LOG_LEVEL = env.str("SLUICE_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

from .stack import *  # noqa: E402,F401,F403
from .databases import *  # noqa: E402,F401,F403
from .caches import *  # noqa: E402,F401,F403
from .celery import *  # noqa: E402,F401,F403
from .rag import *  # noqa: E402,F401,F403
from .overload import *  # noqa: E402,F401,F403
