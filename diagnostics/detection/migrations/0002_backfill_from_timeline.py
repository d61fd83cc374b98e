"""Open incidents keep their alerts: each fingerprint's last `alert` event becomes its Alert
row, and its dedup key (target, or fingerprint and kind) an open AlertGroup, so signals that
arrive after the upgrade join the incidents they joined before it."""

from django.db import migrations

OPEN_STATUSES = ("investigating", "identified", "monitoring")
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
KINDS = ("availability", "performance", "data_integrity", "other")


def backfill(apps, schema_editor):
    Incident = apps.get_model("incidents", "Incident")
    TimelineEvent = apps.get_model("incidents", "TimelineEvent")
    TargetDatabase = apps.get_model("diagnostics", "TargetDatabase")
    Alert = apps.get_model("detection", "Alert")
    AlertGroup = apps.get_model("detection", "AlertGroup")
    targets = {t.pk: t for t in TargetDatabase.objects.all()}
    taken = set()
    # Most severe, then newest first: where two old incidents shared what is now one key
    # (a target's availability and performance incidents), the key goes to that one.
    incidents = Incident.objects.filter(status__in=OPEN_STATUSES).order_by(
        "severity", "-declared_at", "-id"
    )
    for incident in incidents.iterator():
        latest = {}
        first = {}
        events = TimelineEvent.objects.filter(incident_id=incident.pk, kind="alert").order_by(
            "occurred_at", "id"
        )
        for event in events.iterator():
            data = event.data or {}
            fingerprint = str(data.get("fingerprint") or "")[:200]
            if not fingerprint or data.get("status") not in ("firing", "resolved"):
                continue
            first.setdefault(fingerprint, event)
            latest[fingerprint] = event
        for fingerprint, event in latest.items():
            data = event.data
            target = targets.get(data.get("target_id"))
            kind = data.get("kind") if data.get("kind") in KINDS else "other"
            severity = data.get("severity") if data.get("severity") in SEVERITIES else "SEV3"
            source = data.get("source") if data.get("source") in (
                "alertmanager", "webhook", "monitor"
            ) else "webhook"
            if target is not None:
                key, label = f"target:{target.pk}", target.name
            else:
                key, label = f"fingerprint:{fingerprint}:{kind}"[:255], str(data.get("title"))
            group = None
            if key not in taken:
                taken.add(key)
                group = AlertGroup.objects.create(
                    key=key, label=label[:300], kind=kind, incident_id=incident.pk, target=target
                )
            title = str(data.get("title") or fingerprint)[:200]
            Alert.objects.create(
                incident_id=incident.pk,
                group=group,
                fingerprint=fingerprint,
                source=source,
                name=str(data.get("alertname") or data.get("rule") or title)[:200],
                title=title,
                severity=severity,
                kind=kind,
                target=target,
                target_hint=str(data.get("target_hint") or "")[:300],
                status=data["status"],
                url=str(data.get("url") or "")[:2000],
                first_seen_at=first[fingerprint].occurred_at,
                last_seen_at=event.occurred_at,
                recorded_status=data["status"],
                recorded_at=event.recorded_at or event.occurred_at,
            )


class Migration(migrations.Migration):
    dependencies = [("detection", "0001_initial")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
