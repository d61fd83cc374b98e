"""Production: every secret from the environment, HTTPS everywhere, `check --deploy` clean."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env


def _required(name: str, value):
    """Refuse to start on a variable that is set but empty (unset ones fail in django-environ)."""
    if not value or (isinstance(value, list) and not any(value)):
        raise ImproperlyConfigured(f"Set the {name} environment variable (it is empty).")
    return value


DEBUG = False
SECRET_KEY = _required("DJANGO_SECRET_KEY", env("DJANGO_SECRET_KEY"))  # no default here
ALLOWED_HOSTS = _required("DJANGO_ALLOWED_HOSTS", env.list("DJANGO_ALLOWED_HOSTS"))

# X-Forwarded-Proto says whether the client used HTTPS, but anyone can send it: it is believed
# only when a proxy in front of Quell is declared (QUELL_TRUSTED_PROXY_COUNT) and sets it.
if QUELL_TRUSTED_PROXY_COUNT > 0:  # noqa: F405
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")

# Target credentials: required, no derived default (see diagnostics.crypto).
QUELL_FERNET_KEYS = _required("QUELL_FERNET_KEYS", env.list("QUELL_FERNET_KEYS"))
