"""Target credentials encrypted at rest (Fernet), with key rotation (MultiFernet).

Keys come from settings.QUELL_FERNET_KEYS, newest first: the first key encrypts, every key
decrypts, so a new key is put in front, `manage.py quell_rotate_keys` re-encrypts every stored
secret with it, and the old key is then dropped. Dev and test settings derive a key from
SECRET_KEY when none is set; production settings require the variable.

Nothing here ever puts a secret or a token in an exception message or a log line.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.checks import Error, register


class SecretError(Exception):
    """A stored secret cannot be used (no key configured, or it was encrypted with a key that
    is no longer configured). The message never contains the secret or the token."""


def derive_dev_key(secret_key: str) -> str:
    """A Fernet key derived from SECRET_KEY: for dev and test settings only."""
    digest = hashlib.sha256(b"quell-fernet-dev:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _configured_keys() -> tuple[str, ...]:
    keys = settings.QUELL_FERNET_KEYS
    if isinstance(keys, str):
        keys = keys.split(",")
    return tuple(k.strip() for k in keys if k and k.strip())


@functools.lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError):
        # Fernet's own message is generic, but say which position is wrong, never the key.
        raise SecretError(
            "QUELL_FERNET_KEYS holds a malformed key: each key must be 32 url-safe base64-encoded "
            "bytes (generate one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)."
        ) from None


def fernet() -> MultiFernet:
    """The MultiFernet for the configured keys (first key encrypts)."""
    keys = _configured_keys()
    if not keys:
        raise SecretError(
            "No encryption key configured: set QUELL_FERNET_KEYS (comma-separated, newest first)."
        )
    return _multifernet(keys)


def encrypt(plaintext: str) -> str:
    """Encrypt a secret with the newest key; the empty string stays empty (no secret)."""
    if not plaintext:
        return ""
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a stored secret with any configured key."""
    if not token:
        return ""
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretError(
            "A stored credential cannot be decrypted with the configured QUELL_FERNET_KEYS "
            "(was a key removed before `manage.py quell_rotate_keys` ran?). Re-enter the "
            "password for this target."
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt a stored secret with the newest key (unchanged when empty)."""
    if not token:
        return ""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretError(
            "A stored credential cannot be decrypted with any configured key; it was left as is."
        ) from None


@register("quell")
def check_fernet_keys(app_configs=None, **kwargs):
    """System check: the configured keys exist and are well formed."""
    try:
        fernet()
    except SecretError as exc:
        return [Error(str(exc), id="diagnostics.E001")]
    return []
