"""Guarded reads of other apps' data for the web pages and metrics.

`incidents` must not import the other apps (DESIGN.md: dependencies point one way), and those
apps are built alongside this one. So these reads look models up by name at run time
(`apps.get_model`) and check the fields they use; when a model or field is absent they return
"not available" (None or empty), and the pages simply leave that part out.
"""

from __future__ import annotations

import datetime
import functools
from collections import Counter
from dataclasses import dataclass

from django.apps import apps
from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import Incident

# Status values that mean "no longer open" for action items, whatever words the app uses.
CLOSED_WORDS = {
    "done",
    "closed",
    "complete",
    "completed",
    "cancelled",
    "canceled",
    "wont_do",
    "wont_fix",
    "wontfix",
    "resolved",
    "dropped",
    "rejected",
    "obsolete",
}
FAILED_WORDS = {"failed", "failure", "error", "errored", "dead", "bounced", "undeliverable"}


def get_model(app_label: str, *names: str) -> type[models.Model] | None:
    """The first of `names` that exists in the app, or None (app or model not there yet)."""
    for name in names:
        try:
            return apps.get_model(app_label, name)
        except LookupError:
            continue
    return None


def field_names(model) -> set[str]:
    """Concrete field names and attnames (`target` and `target_id`) of a model."""
    names = set()
    for field in model._meta.get_fields():
        if getattr(field, "concrete", False):
            names.add(field.name)
            names.add(getattr(field, "attname", field.name))
    return names


def first_field(model, *candidates: str) -> str | None:
    """The first candidate field the model has."""
    present = field_names(model)
    return next((c for c in candidates if c in present), None)


# --- Targets (diagnostics) -----------------------------------------------------------------


def target_model():
    """diagnostics.TargetDatabase when the diagnostics app has it."""
    return get_model("diagnostics", "TargetDatabase", "Target")


@dataclass(frozen=True)
class _Link:
    model: type[models.Model]
    incident_field: str
    target_field: str


@functools.cache
def target_links() -> tuple[_Link, ...]:
    """Every model (explicit or auto-created m2m table) that ties an incident to a target.

    A link table (IncidentTarget or an m2m) and the diagnostic runs made for an incident both
    say that the incident concerns that target, so the target filter follows all of them.
    """
    target = target_model()
    if target is None:
        return ()
    links = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.app_label not in ("diagnostics", "integrity", "remediation", "incidents"):
            continue
        incident_fk = target_fk = None
        for field in model._meta.get_fields():
            if not (field.concrete and field.is_relation and field.many_to_one):
                continue
            if field.related_model is Incident and incident_fk is None:
                incident_fk = field.name
            elif field.related_model is target and target_fk is None:
                target_fk = field.name
        if incident_fk and target_fk:
            links.append(_Link(model, incident_fk, target_fk))
    # Models are fixed once Django has started, so the search is done once.
    return tuple(links)


def target_choices(limit: int = 500) -> list[tuple[int, str]]:
    """(id, name) of targets for the list filter; empty when diagnostics has no targets."""
    model = target_model()
    if model is None or not target_links():
        return []
    name = first_field(model, "name")
    if name:
        # Only the two columns the filter shows (targets also hold encrypted credentials).
        return list(model.objects.order_by(name).values_list("pk", name)[:limit])
    return [(obj.pk, str(obj)) for obj in model.objects.order_by("pk")[:limit]]


def _target_names(model, ids) -> dict[int, str]:
    name = first_field(model, "name")
    if name:
        return dict(model.objects.filter(pk__in=ids).values_list("pk", name))
    return {t.pk: str(t) for t in model.objects.filter(pk__in=ids)}


def incident_target_q(target_id: int) -> Q:
    """A Q on Incident matching incidents linked to the target through any link."""
    query = Q(pk__in=[])
    for link in target_links():
        ids = link.model.objects.filter(**{f"{link.target_field}_id": target_id}).values(
            f"{link.incident_field}_id"
        )
        query |= Q(pk__in=ids)
    return query


def targets_for_incident(incident_id: int) -> list[str]:
    """Names of the targets an incident is linked to."""
    model = target_model()
    links = target_links()
    if model is None or not links:
        return []
    ids: set[int] = set()
    for link in links:
        ids.update(
            link.model.objects.filter(**{f"{link.incident_field}_id": incident_id}).values_list(
                f"{link.target_field}_id", flat=True
            )
        )
    return sorted(_target_names(model, ids).values())


def incident_counts_by_target(*, since: datetime.datetime) -> list[tuple[str, int]] | None:
    """Incidents declared since `since` per target (None when targets do not exist)."""
    model = target_model()
    links = target_links()
    if model is None or not links:
        return None
    pairs: set[tuple[int, int]] = set()
    for link in links:
        pairs.update(
            link.model.objects.filter(
                **{f"{link.incident_field}__declared_at__gte": since}
            ).values_list(f"{link.target_field}_id", f"{link.incident_field}_id")
        )
    counts = Counter(target_id for target_id, _ in pairs)
    names = _target_names(model, set(counts))
    return sorted(
        ((names.get(pk, f"#{pk}"), n) for pk, n in counts.items()), key=lambda item: -item[1]
    )


# --- Action items (postmortems) --------------------------------------------------------------


def _closed_values(model, status_field: str) -> list[str]:
    field = model._meta.get_field(status_field)
    values = [value for value, _ in (field.choices or [])]
    return [v for v in values if str(v).lower() in CLOSED_WORDS]


def action_items_summary() -> dict | None:
    """Open and overdue action items (None when postmortems has no ActionItem model)."""
    model = get_model("postmortems", "ActionItem")
    if model is None:
        return None
    status = first_field(model, "status", "state")
    due = first_field(model, "due_date", "due", "due_on", "due_at")
    qs: QuerySet = model.objects.all()
    if status:
        closed = _closed_values(model, status)
        open_qs = qs.exclude(**{f"{status}__in": closed}) if closed else qs
    elif (done := first_field(model, "done", "completed", "is_done")) is not None:
        open_qs = qs.filter(**{done: False})
    else:
        open_qs = qs
    overdue = None
    if due:
        field = model._meta.get_field(due)
        today = timezone.localdate()
        cutoff = timezone.now() if isinstance(field, models.DateTimeField) else today
        overdue = open_qs.filter(**{f"{due}__lt": cutoff}).count()
    return {"total": qs.count(), "open": open_qs.count(), "overdue": overdue}


# --- Diagnostic runs and deliveries, for Prometheus ----------------------------------------


def status_counts(model, field: str) -> dict[str, int]:
    """Rows per value of a status field, every declared choice included (zero when none)."""
    counts = {str(value): 0 for value, _ in (model._meta.get_field(field).choices or [])}
    rows = model.objects.values_list(field).annotate(n=models.Count("pk")).order_by()
    counts.update({str(value): n for value, n in rows})
    return counts


def diagnostic_run_model():
    return get_model("diagnostics", "DiagnosticRun", "Run")


def check_result_model():
    return get_model("diagnostics", "CheckResult")


def delivery_model():
    """comms' delivery record, whatever the app named it."""
    found = get_model("comms", "Delivery", "NotificationDelivery", "MessageDelivery")
    if found is not None:
        return found
    try:
        config = apps.get_app_config("comms")
    except LookupError:
        return None
    return next((m for m in config.get_models() if m.__name__.endswith("Delivery")), None)


def is_failure(value: str) -> bool:
    """Whether a status value means the work failed."""
    return str(value).lower() in FAILED_WORDS
