"""Local development: DEBUG on. Secrets come from the environment or from the per-install file
scripts/run generates (var/secrets.env); there is no built-in key."""

import os

import environ
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import BASE_DIR, env

# scripts/run generates DJANGO_SECRET_KEY and QUELL_FERNET_KEYS once into this file (0600);
# reading it here lets `manage.py` commands run by hand use the same keys. The environment wins.
QUELL_SECRETS_FILE = env("QUELL_SECRETS_FILE", default=str(BASE_DIR / "var" / "secrets.env"))
environ.Env.read_env(QUELL_SECRETS_FILE, overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Without a mail server named, mail (status-page confirmations, review invites, e-mail
# channels) is printed to the log of the process that sends it (the worker's, under
# scripts/run) instead of retrying against a server that is not there.
if "EMAIL_URL" not in os.environ:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. Start Quell with scripts/run, which generates one into "
        f"{QUELL_SECRETS_FILE} and reuses it, or set DJANGO_SECRET_KEY (50+ random characters)."
    )
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}

# Target credentials: the keys scripts/run generated (or QUELL_FERNET_KEYS from the
# environment); when neither is there, a key derived from this install's own SECRET_KEY.
QUELL_FERNET_KEYS = env.list("QUELL_FERNET_KEYS", default=[])
if not QUELL_FERNET_KEYS:
    import base64 as _b64
    import hashlib as _hashlib

    QUELL_FERNET_KEYS = [
        _b64.urlsafe_b64encode(
            _hashlib.sha256(b"quell-fernet-dev:" + SECRET_KEY.encode()).digest()
        ).decode()
    ]
