"""How an alert's labels map to Quell: which target, which severity, which kind, which
fingerprint. Reads only (settings and TargetDatabase)."""

from __future__ import annotations

import hashlib
import json
import re
import time

from django.conf import settings
from django.db.models import Q

from diagnostics.models import TargetDatabase
from incidents.models import Kind
from incidents.severity import Severity

# Labels naming the target, in the order they are trusted.
TARGET_LABELS = ("quell_target", "target")
INSTANCE_LABELS = ("instance", "host", "server", "hostname")
DATABASE_LABELS = ("datname", "database", "db", "dbname")
SEVERITY_LABELS = ("quell_severity", "severity", "priority", "level")
KIND_LABELS = ("quell_kind", "kind")

# Alert-name keywords, tried in this order (the first match wins). Names are lower-cased with
# separators removed: "PostgresDown", "pg_down" and "postgres-down" all read "postgresdown".
KIND_RULES: tuple[tuple[str, re.Pattern], ...] = (
    (
        Kind.DATA_INTEGRITY,
        re.compile(r"integrity|corrupt|checksum|constraint|orphan|duplicate|consisten"),
    ),
    (
        Kind.AVAILABILITY,
        re.compile(
            r"down$|isdown|notup|unreachable|unavailable|absent|crash|restart|refused|"
            r"connectionerror|connectionfail|cannotconnect|failover|outofdisk|diskfull"
        ),
    ),
    (
        Kind.PERFORMANCE,
        re.compile(
            r"slow|latency|lock|deadlock|connections|toomany|pool|replication|lag|cpu|memory|"
            r"disk|iops|io|bloat|wraparound|longrunning|query|queries|timeout|cache|load|"
            r"vacuum|wal|checkpoint|temp|idle"
        ),
    ),
)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


def kind_for(*, name: str, labels: dict[str, str]) -> str:
    """The incident kind: a kind label, QUELL_ALERT_KIND_MAP, then the name's keywords."""
    for label in KIND_LABELS:
        value = (labels.get(label) or "").strip().lower().replace(" ", "_").replace("-", "_")
        if value in Kind.values:
            return value
    mapped = settings.QUELL_ALERT_KIND_MAP.get(name)
    if mapped in Kind.values:
        return mapped
    normalised = _norm(name)
    for kind, pattern in KIND_RULES:
        if pattern.search(normalised):
            return kind
    return Kind.OTHER


def severity_for(*, value: str | None, kind: str) -> str:
    """SEV1-SEV4 from a severity label: taken as is, else QUELL_ALERT_SEVERITY_MAP
    ("<kind>:<label>" first), else QUELL_ALERT_DEFAULT_SEVERITY."""
    raw = (value or "").strip()
    if raw.upper() in Severity.values:
        return raw.upper()
    mapping = {str(k).lower(): v for k, v in settings.QUELL_ALERT_SEVERITY_MAP.items()}
    for key in (f"{kind}:{raw.lower()}", raw.lower()):
        if key in mapping and mapping[key] in Severity.values:
            return mapping[key]
    return settings.QUELL_ALERT_DEFAULT_SEVERITY


def severity_label(labels: dict[str, str]) -> str:
    """The first severity-like label present."""
    for label in SEVERITY_LABELS:
        if labels.get(label):
            return labels[label]
    return ""


def known_severity(value: str) -> bool:
    """True when a severity value maps to a Quell severity (for validating the generic webhook)."""
    raw = (value or "").strip()
    if raw.upper() in Severity.values:
        return True
    keys = {str(k).lower().split(":")[-1] for k in settings.QUELL_ALERT_SEVERITY_MAP}
    return raw.lower() in keys


def fingerprint_of(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (when the sender gives none)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _split_instance(instance: str) -> tuple[str, int | None]:
    """ "db1:9187" -> ("db1", 9187); "[::1]:5432" -> ("::1", 5432); "db1" -> ("db1", None)."""
    instance = instance.strip()
    m = re.fullmatch(r"\[(?P<h>[^\]]+)\](?::(?P<p>\d+))?", instance)
    if m:
        return m["h"], int(m["p"]) if m["p"] else None
    if instance.count(":") == 1:
        host, _, port = instance.partition(":")
        if port.isdigit():
            return host, int(port)
    return instance, None


# Resolutions of label sets to targets, remembered for a short while: a notification of 100
# alerts names the same database 100 times, and Alertmanager repeats its alerts. Any change to
# a target in this process forgets them all (receivers.forget_target_resolutions); another
# process's change is seen within RESOLUTION_TTL_S.
RESOLUTION_TTL_S = 10.0
_RESOLUTIONS_MAX = 10_000
_resolutions: dict[tuple, tuple[float, TargetDatabase | None, str]] = {}


def forget_target_resolutions() -> None:
    _resolutions.clear()


def target_for(labels: dict[str, str]) -> tuple[TargetDatabase | None, str]:
    """(the target the labels name, what they named), remembered for RESOLUTION_TTL_S."""
    key = tuple(
        (labels.get(name) or "").strip()
        for name in (*TARGET_LABELS, *INSTANCE_LABELS, *DATABASE_LABELS)
    )
    now = time.monotonic()
    remembered = _resolutions.get(key)
    if remembered is not None and remembered[0] > now:
        return remembered[1], remembered[2]
    target, hint = _resolve_target(labels)
    if len(_resolutions) >= _RESOLUTIONS_MAX:
        _resolutions.clear()
    _resolutions[key] = (now + RESOLUTION_TTL_S, target, hint)
    return target, hint


def _resolve_target(labels: dict[str, str]) -> tuple[TargetDatabase | None, str]:
    """(the target the labels name, what they named); (None, hint) when nothing matches
    unambiguously.

    `quell_target`/`target` name a target exactly. Otherwise an `instance` that is one of a
    target's aliases (with `datname` when several share it) decides; else `instance` (host[:port],
    where the port is often the exporter's, so it only breaks ties) and `datname` narrow the
    targets down, and exactly one left is the match. `datname` alone matches when exactly one
    target has that database.
    """
    for label in TARGET_LABELS:
        name = (labels.get(label) or "").strip()
        if name:
            return TargetDatabase.objects.filter(name__iexact=name).first(), name
    instance = next((labels[k].strip() for k in INSTANCE_LABELS if labels.get(k)), "")
    database = next((labels[k].strip() for k in DATABASE_LABELS if labels.get(k)), "")
    hint = "/".join(part for part in (instance, database) if part)
    if not instance and not database:
        return None, ""
    qs = TargetDatabase.objects.all()
    if instance:
        aliased = qs.filter(aliases__contains=[instance.lower()])
        if database:
            aliased = aliased.filter(database=database)
        candidates = list(aliased[:2])
        if candidates:
            # An alias is the operator's own word for the target: it decides, or (shared by
            # several targets that datname does not tell apart) nothing does.
            return (candidates[0], hint) if len(candidates) == 1 else (None, hint)
        host, port = _split_instance(instance)
        by_name = TargetDatabase.objects.filter(name__iexact=instance)
        if by_name.count() == 1 and not database:
            return by_name.first(), hint
        qs = qs.filter(Q(host__iexact=host) | Q(name__iexact=host))
        if port is not None and qs.filter(port=port).exists():
            qs = qs.filter(port=port)
    if database:
        qs = qs.filter(database=database)
    candidates = list(qs[:2])
    if len(candidates) == 1:
        return candidates[0], hint
    if instance and database and not candidates:
        # The instance is usually the exporter's address, unknown here: datname alone decides
        # when exactly one target has that database (an alias makes it exact).
        candidates = list(TargetDatabase.objects.filter(database=database)[:2])
        if len(candidates) == 1:
            return candidates[0], hint
    return None, hint
