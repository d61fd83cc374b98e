"""The two payloads Quell accepts, validated, and turned into Signals.

- Prometheus Alertmanager's webhook (version 4): `alerts[]` with status, labels, annotations,
  startsAt, endsAt, generatorURL, fingerprint.
- A generic JSON object: title, severity, kind, target, summary, fingerprint, status (and
  optional description, source, started_at, url, labels).
"""

from __future__ import annotations

import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from diagnostics.detection.mapping import (
    fingerprint_of,
    kind_for,
    known_severity,
    severity_for,
    severity_label,
)
from diagnostics.detection.mapping import target_for as _target_for
from diagnostics.detection.services import (
    FIRING,
    RESOLVED,
    Delivery,
    Signal,
    alertmanager_group,
)
from incidents.models import Kind

STATUSES = (FIRING, RESOLVED)
# Alertmanager's "no end time" (Go's zero time).
_ZERO_TIME_PREFIX = "0001-01-01"


def _time(value: str, field: str) -> datetime.datetime | None:
    if not value or value.startswith(_ZERO_TIME_PREFIX):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise serializers.ValidationError({field: [f"Not an RFC 3339 time: {value!r}."]})
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, datetime.UTC)
    return parsed


class _Labels(serializers.DictField):
    """Label sets: string values (numbers are taken as text, other shapes refused)."""

    child = serializers.CharField(allow_blank=True, max_length=4000)


class AlertmanagerAlertSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=STATUSES)
    labels = _Labels()
    annotations = _Labels(required=False, default=dict)
    startsAt = serializers.CharField(required=False, allow_blank=True, default="")
    endsAt = serializers.CharField(required=False, allow_blank=True, default="")
    generatorURL = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000
    )
    fingerprint = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200
    )

    def validate_labels(self, value):
        if not (value.get("alertname") or "").strip():
            raise serializers.ValidationError("An alert needs an alertname label.")
        return value

    def validate(self, attrs):
        attrs["starts_at"] = _time(attrs.pop("startsAt"), "startsAt")
        attrs["ends_at"] = _time(attrs.pop("endsAt"), "endsAt")
        return attrs


class AlertmanagerPayloadSerializer(serializers.Serializer):
    """Alertmanager's webhook body (version 4)."""

    version = serializers.CharField(required=False, default="4")
    receiver = serializers.CharField(required=False, allow_blank=True, default="", max_length=150)
    status = serializers.ChoiceField(choices=STATUSES, required=False)
    alerts = AlertmanagerAlertSerializer(many=True, allow_empty=True)
    groupLabels = _Labels(required=False, default=dict)
    commonLabels = _Labels(required=False, default=dict)
    commonAnnotations = _Labels(required=False, default=dict)
    externalURL = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000
    )
    groupKey = serializers.CharField(required=False, allow_blank=True, default="")
    truncatedAlerts = serializers.IntegerField(required=False, default=0, min_value=0)

    def validate_version(self, value):
        if value != "4":
            raise serializers.ValidationError(
                f"Only version 4 of Alertmanager's webhook payload is understood, not {value!r}."
            )
        return value


def alertmanager_deliveries(payload: dict, raw_alerts: list) -> list[Delivery]:
    """A validated Alertmanager notification as deliveries: one for the whole notification
    (its groupKey, or its group labels, is one incident), or one per alert when it names no
    group. Signals are in the payload's order; raw alerts kept as sent."""
    group, label = alertmanager_group(
        group_key=(payload.get("groupKey") or "").strip(),
        receiver=payload.get("receiver") or "",
        group_labels=payload.get("groupLabels") or {},
    )
    signals = alertmanager_signals(payload, raw_alerts)
    if group:
        return [Delivery(signals, group=group, group_label=label)]
    return [Delivery([signal]) for signal in signals]


def alertmanager_signals(payload: dict, raw_alerts: list) -> list[Signal]:
    """One Signal per alert of a validated Alertmanager payload (raw alerts kept as sent)."""
    receiver = payload.get("receiver") or ""
    detected_by = f"alertmanager/{receiver}" if receiver else "alertmanager"
    signals = []
    for index, alert in enumerate(payload["alerts"]):
        labels = alert["labels"]
        annotations = alert["annotations"]
        name = labels["alertname"].strip()
        kind = kind_for(name=name, labels=labels)
        target, hint = _target_for(labels)
        title = annotations.get("summary") or name
        if target is None and hint:
            title = f"{title} ({hint})" if hint not in title else title
        elif target is not None and target.name not in title:
            title = f"{title} on {target.name}"
        signals.append(
            Signal(
                source="alertmanager",
                fingerprint=alert["fingerprint"] or fingerprint_of(labels),
                status=alert["status"],
                title=title,
                severity=severity_for(value=severity_label(labels), kind=kind),
                kind=kind,
                summary=annotations.get("summary") or "",
                description=annotations.get("description") or annotations.get("message") or "",
                target=target,
                target_hint=hint if target is None else "",
                detected_by=detected_by,
                started_at=alert["starts_at"],
                url=alert["generatorURL"],
                name=name,
                data={
                    "alertname": name,
                    "receiver": receiver,
                    "labels": labels,
                    "annotations": annotations,
                    "ends_at": alert["ends_at"].isoformat() if alert["ends_at"] else None,
                    "external_url": payload.get("externalURL") or "",
                    "group_key": payload.get("groupKey") or "",
                    "raw": raw_alerts[index] if index < len(raw_alerts) else None,
                },
            )
        )
    return signals


class GenericAlertSerializer(serializers.Serializer):
    """Quell's generic alert: one JSON object per request."""

    title = serializers.CharField(max_length=200)
    status = serializers.ChoiceField(choices=STATUSES, required=False, default=FIRING)
    severity = serializers.CharField(required=False, allow_blank=True, default="", max_length=30)
    kind = serializers.ChoiceField(choices=Kind.choices, required=False, allow_blank=True)
    target = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    summary = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    fingerprint = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200
    )
    source = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    started_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    url = serializers.URLField(required=False, allow_blank=True, default="", max_length=2000)
    labels = _Labels(required=False, default=dict)

    def validate_severity(self, value):
        if value and not known_severity(value):
            raise serializers.ValidationError(
                "Use SEV1-SEV4 or a severity named in QUELL_ALERT_SEVERITY_MAP "
                "(critical, warning, info, ...)."
            )
        return value


def generic_signal(data: dict, raw: dict) -> Signal:
    """The Signal of a validated generic alert."""
    labels = dict(data["labels"])
    title = data["title"].strip()
    kind = data.get("kind") or kind_for(name=title, labels=labels)
    name = data["target"].strip()
    if name:
        target, hint = _target_for({"quell_target": name})
    else:
        target, hint = _target_for(labels)
    fingerprint = data["fingerprint"] or fingerprint_of(
        {"title": title, "target": name or hint, "kind": kind}
    )
    source = data["source"].strip()
    return Signal(
        source="webhook",
        fingerprint=fingerprint,
        status=data["status"],
        title=title,
        severity=severity_for(value=data["severity"] or severity_label(labels), kind=kind),
        kind=kind,
        summary=data["summary"],
        description=data["description"],
        target=target,
        target_hint=hint if target is None else "",
        detected_by=f"webhook/{source}" if source else "webhook",
        started_at=data["started_at"],
        url=data["url"],
        name=title,
        data={"alertname": title, "labels": labels, "raw": raw},
    )
