"""Local development: DEBUG on, a throwaway secret key when none is set."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me-3c1f1e9a7b")
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}

# Target credentials: a key derived from SECRET_KEY unless QUELL_FERNET_KEYS is set (dev only).
if not QUELL_FERNET_KEYS:  # noqa: F405
    import base64 as _b64
    import hashlib as _hashlib

    QUELL_FERNET_KEYS = [
        _b64.urlsafe_b64encode(
            _hashlib.sha256(b"quell-fernet-dev:" + SECRET_KEY.encode()).digest()
        ).decode()
    ]
