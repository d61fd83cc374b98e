"""Test settings: real PostgreSQL and Redis, fast hashing, mail kept in memory."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env("DJANGO_SECRET_KEY", default="test-only-key-not-secret-6f0c2d4e8a")
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
# Tests open and close connections per test (pytest-django): no pool, no persistent connection.
DATABASES["default"]["OPTIONS"].pop("pool", None)  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# Target credentials: a key derived from SECRET_KEY unless QUELL_FERNET_KEYS is set (test only).
if not QUELL_FERNET_KEYS:  # noqa: F405
    import base64 as _b64
    import hashlib as _hashlib

    QUELL_FERNET_KEYS = [
        _b64.urlsafe_b64encode(
            _hashlib.sha256(b"quell-fernet-dev:" + SECRET_KEY.encode()).digest()
        ).decode()
    ]

# API throttles stay on, at rates no test reaches, so that no test fails for having run after
# others; tests of throttling itself set low rates (tests/accounts).
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        "anon": "100000/minute",
        "user": "100000/minute",
        "alerts": "100000/minute",
    },
}

# No test may reach beyond this machine: every outbound connection Quell makes (channels,
# webhooks, target databases) is confined to loopback, and the local receivers speak http.
QUELL_OUTBOUND_CONFINE_TO_LOOPBACK = env.bool("QUELL_OUTBOUND_CONFINE_TO_LOOPBACK", default=True)
QUELL_OUTBOUND_ALLOW_HTTP = env.bool("QUELL_OUTBOUND_ALLOW_HTTP", default=True)
