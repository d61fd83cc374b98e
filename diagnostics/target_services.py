"""Writes for target databases: registering, changing and deleting them, rotating their
stored credentials, and probing a connection ("Test connection").

Keyword-only and row-locked, like every service. Credentials are kept only as Fernet tokens
(diagnostics.crypto); messages that could quote them are scrubbed.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.conf import settings
from django.db import transaction

from config.kernel.actors import user_or_none
from config.kernel.secrets import scrub

from . import crypto
from .errors import DiagnosticsError, TargetInUse, finite_number
from .models import Environment, SSLMode, TargetDatabase
from .target import Timeouts

logger = logging.getLogger(__name__)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _looks_numeric(text: str) -> bool:
    """Whether float() takes the text (then it must be finite); other strings are left alone."""
    try:
        float(text)
    except ValueError:
        return False
    return True


TARGET_FIELDS = (
    "name",
    "environment",
    "host",
    "port",
    "database",
    "user",
    "sslmode",
    "options",
    "tags",
    "aliases",
    "enabled",
    "remediation_allowed",
    "thresholds",
)


def _clean_labels(values, *, field: str, what: str, max_length: int) -> list[str]:
    """Comma-separated text or a list: stripped, lower-cased, blanks and repeats dropped."""
    if values is None:
        return []
    if isinstance(values, str):
        values = values.split(",")
    cleaned = []
    for value in values:
        value = str(value).strip().lower()
        if not value:
            continue
        if len(value) > max_length:
            raise DiagnosticsError(f"{what} are at most {max_length} characters.", field=field)
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def _clean_tags(tags) -> list[str]:
    return _clean_labels(tags, field="tags", what="Tags", max_length=50)


def _clean_aliases(aliases) -> list[str]:
    """Other names alerts use for the target, such as an exporter's instance (shop-db:9187)."""
    return _clean_labels(aliases, field="aliases", what="Aliases", max_length=255)


def _dsn_parts(dsn: str) -> dict[str, Any]:
    """The non-secret parts of a DSN (host, port, database, user), for display and checks."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # psycopg's message quotes the DSN, password included: never pass it on.
        raise DiagnosticsError(
            "The DSN is not a valid libpq connection string or URI.", field="dsn"
        ) from None
    out: dict[str, Any] = {}
    if parts.get("host"):
        out["host"] = str(parts["host"])
    if parts.get("port"):
        try:
            out["port"] = int(str(parts["port"]).split(",")[0])
        except ValueError:
            raise DiagnosticsError("The DSN's port is not a number.", field="dsn") from None
    if parts.get("dbname"):
        out["database"] = str(parts["dbname"])
    if parts.get("user"):
        out["user"] = str(parts["user"])
    return out


def _validate_target(target: TargetDatabase) -> None:
    name = (target.name or "").strip()
    if not name:
        raise DiagnosticsError("A name is required.", field="name")
    target.name = name
    if target.environment not in Environment.values:
        raise DiagnosticsError(
            f"Environment must be one of {', '.join(Environment.values)}.", field="environment"
        )
    if target.sslmode not in SSLMode.values:
        raise DiagnosticsError(
            f"sslmode must be one of {', '.join(SSLMode.values)}.", field="sslmode"
        )
    try:
        port = int(target.port)
    except (TypeError, ValueError):
        raise DiagnosticsError("Port must be a number between 1 and 65535.", field="port") from None
    if not 1 <= port <= 65535:
        raise DiagnosticsError("Port must be a number between 1 and 65535.", field="port")
    target.port = port
    if not target.has_dsn:
        if not (target.host or "").strip():
            raise DiagnosticsError("A host is required (or give a whole DSN).", field="host")
        if not (target.database or "").strip():
            raise DiagnosticsError("A database is required (or give a DSN).", field="database")
        if not (target.user or "").strip():
            raise DiagnosticsError("A user is required (or give a whole DSN).", field="user")
    if not isinstance(target.thresholds, dict):
        raise DiagnosticsError(
            'Thresholds must be an object of check key to settings, e.g. {"long_running_queries":'
            ' {"warning_s": 60}}.',
            field="thresholds",
        )
    if _has_nul(target.thresholds):
        # PostgreSQL's jsonb cannot hold U+0000: refused here rather than as a 500 on save.
        raise DiagnosticsError("Thresholds may not contain NUL characters.", field="thresholds")
    for key, value in target.thresholds.items():
        if not isinstance(value, dict):
            raise DiagnosticsError(
                f"Thresholds for {key!r} must be an object of setting to value.",
                field="thresholds",
            )
        for setting, number in value.items():
            # Checks read thresholds with float(): "nan" or "inf" would pass every comparison.
            numeric = isinstance(number, (int, float)) and not isinstance(number, bool)
            if numeric or (isinstance(number, str) and _looks_numeric(number)):
                finite_number(number, field="thresholds", what=f"{key}.{setting}")
    qs = TargetDatabase.objects.filter(name__iexact=target.name)
    if target.pk:
        qs = qs.exclude(pk=target.pk)
    if qs.exists():
        raise DiagnosticsError(f"A target named {target.name!r} already exists.", field="name")


@transaction.atomic
def target_create(
    *,
    name: str,
    environment: str = Environment.PRODUCTION,
    host: str = "",
    port: int = 5432,
    database: str = "",
    user: str = "",
    password: str = "",
    dsn: str = "",
    sslmode: str = SSLMode.PREFER,
    options: str = "",
    tags=(),
    aliases=(),
    enabled: bool = True,
    remediation_allowed: bool = False,
    thresholds: dict | None = None,
    actor=None,
) -> TargetDatabase:
    """Register a target database; the password (or whole DSN) is stored encrypted."""
    target = TargetDatabase(
        name=name,
        environment=environment,
        host=(host or "").strip(),
        port=port,
        database=(database or "").strip(),
        user=(user or "").strip(),
        sslmode=sslmode,
        options=options or "",
        tags=_clean_tags(tags),
        aliases=_clean_aliases(aliases),
        enabled=enabled,
        remediation_allowed=remediation_allowed,
        thresholds=thresholds if thresholds is not None else {},
        created_by=user_or_none(actor),
    )
    if dsn:
        for field, value in _dsn_parts(dsn).items():
            if not getattr(target, field) or (field == "port" and port == 5432):
                setattr(target, field, value)
        target.set_dsn(dsn)
    target.set_password(password or "")
    _validate_target(target)
    target.save()
    logger.info("Target %s (%s) registered", target.name, target.pk)
    return target


@transaction.atomic
def target_update(
    *,
    target_id: int,
    actor=None,
    password: str | None = None,
    dsn: str | None = None,
    **changes: Any,
) -> TargetDatabase:
    """Change a target's settings. password/dsn: None keeps the stored one, "" clears it."""
    unknown = set(changes) - set(TARGET_FIELDS)
    if unknown:
        raise DiagnosticsError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    target = TargetDatabase.objects.select_for_update().filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    if "tags" in changes:
        changes["tags"] = _clean_tags(changes["tags"])
    if "aliases" in changes:
        changes["aliases"] = _clean_aliases(changes["aliases"])
    for field in ("host", "database", "user"):
        if field in changes:
            changes[field] = (changes[field] or "").strip()
    for field, value in changes.items():
        setattr(target, field, value)
    if dsn is not None:
        if dsn:
            for field, value in _dsn_parts(dsn).items():
                if field not in changes:
                    setattr(target, field, value)
        target.set_dsn(dsn)
    if password is not None:
        target.set_password(password)
    _validate_target(target)
    target.save()
    logger.info("Target %s (%s) updated", target.name, target.pk)
    return target


@transaction.atomic
def target_delete(*, target_id: int, actor=None) -> None:
    """Delete a target that has no runs and no incident links (those are evidence)."""
    target = TargetDatabase.objects.select_for_update().filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    # Integrity runs are evidence too (and protect the target row).
    runs = target.runs.count() + target.integrity_runs.count()
    links = target.incident_links.count()
    if runs or links:
        raise TargetInUse(
            f"Target {target.name!r} has {runs} diagnostic run(s) and {links} incident link(s) "
            "kept as evidence; disable it instead of deleting it.",
            field="target",
        )
    target.delete()


def rotate_secrets() -> dict[str, int]:
    """Re-encrypt every stored credential with the newest key; returns counts."""
    counts = {"targets": 0, "rotated": 0, "failed": 0}
    for target_id in TargetDatabase.objects.values_list("pk", flat=True):
        with transaction.atomic():
            target = TargetDatabase.objects.select_for_update().get(pk=target_id)
            counts["targets"] += 1
            try:
                password = crypto.rotate(target.password_encrypted)
                dsn = crypto.rotate(target.dsn_encrypted)
            except crypto.SecretError:
                counts["failed"] += 1
                logger.warning("Target %s: credential not decryptable, left as is", target.pk)
                continue
            if (password, dsn) != (target.password_encrypted, target.dsn_encrypted):
                target.password_encrypted, target.dsn_encrypted = password, dsn
                target.save(update_fields=["password_encrypted", "dsn_encrypted", "updated_at"])
                counts["rotated"] += 1
    return counts


def diagnostic_timeouts() -> Timeouts:
    """The bounds of every diagnostic session (settings QUELL_DIAGNOSTICS_*)."""
    return Timeouts(
        connect_s=settings.QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S,
        statement_ms=settings.QUELL_DIAGNOSTICS_STATEMENT_TIMEOUT_MS,
        lock_ms=settings.QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS,
    )


def target_test_connection(*, target_id: int) -> dict[str, Any]:
    """Probe a target: reachability, latency, version, recovery, platform, missing privileges."""
    from .target_probe import probe

    target = TargetDatabase.objects.filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    try:
        spec = target.to_connection_spec()
    except crypto.SecretError as exc:
        return {"reachable": False, "error": str(exc), "missing": [], "warnings": []}
    result = dict(probe(spec, diagnostic_timeouts()))
    secrets = (spec.password, spec.dsn)
    if result.get("error"):
        result["error"] = scrub(result["error"], secrets=secrets)
    result.setdefault("missing", [])
    result.setdefault("warnings", [])
    result["target"] = {"id": target.pk, "name": target.name}
    return result
