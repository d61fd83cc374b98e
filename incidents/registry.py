"""What other apps contribute to the incident pages, the list's filters, insights and /metrics.

`incidents` imports no other app (docs/architecture.md), yet its pages show their panels and
its list filters by their databases. Each app registers real objects here from its
`AppConfig.ready()`: panel templates, the models that tie an incident to a target database,
the action-item summary, its /metrics families. Nothing is looked up by a guessed name. The
system check in incidents.checks (quell.E101-E103) validate every registration at start-up:
a missing template or field is an error then, not a panel or a filter that silently vanishes.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Q
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

from .models import Incident

# --- panels on the incident page -------------------------------------------------------------

TOP, FEATURE, APP = "top", "feature", "app"
AREAS = (TOP, FEATURE, APP)


@dataclass(frozen=True)
class Panel:
    """A panel on the incident page, rendered with {incident, user, request}.

    `area`: top (right under the header: what a responder needs first), feature (the
    responder's tools, under the timeline) or app (each app's own section). `refresh`: re-read
    after an action on the page (not for panels where people type: re-rendering would lose it).
    """

    key: str
    title: str
    template: str
    area: str = APP
    order: int = 100
    refresh: bool = False


_panels: dict[str, Panel] = {}


def register_panel(panel: Panel) -> Panel:
    """Add (or, under the same key, replace) a panel."""
    _panels[panel.key] = panel
    return panel


def panels(area: str) -> list[Panel]:
    """The panels of an area, in order."""
    return sorted((p for p in _panels.values() if p.area == area), key=lambda p: (p.order, p.key))


def panel_problems() -> list[str]:
    problems = []
    for panel in _panels.values():
        if panel.area not in AREAS:
            problems.append(f"Panel {panel.key!r}: area {panel.area!r} is not one of {AREAS}.")
        try:
            get_template(panel.template)
        except TemplateDoesNotExist:
            problems.append(f"Panel {panel.key!r}: template {panel.template!r} does not exist.")
    return problems


# --- target databases: which incidents concern which database --------------------------------


@dataclass(frozen=True)
class TargetLink:
    """A model whose rows say that an incident concerns a target database (the affected-target
    link, the runs made for an incident...): its two foreign keys, by their real names."""

    model: type[models.Model]
    incident_field: str
    target_field: str


@dataclass(frozen=True)
class TargetNames:
    """The owner of target databases: (id, name) choices, and names by id."""

    choices: Callable[[], list[tuple[int, str]]]
    names: Callable[[set[int]], dict[int, str]]


_links: list[TargetLink] = []
_target_names: list[TargetNames] = []


def register_target_link(link: TargetLink) -> TargetLink:
    if link not in _links:
        _links.append(link)
    return link


def register_target_names(provider: TargetNames) -> TargetNames:
    _target_names[:] = [provider]
    return provider


def target_choices() -> list[tuple[int, str]]:
    """(id, name) of the databases to filter incidents by; [] when no app registered any."""
    if not _target_names or not _links:
        return []
    return list(_target_names[0].choices())


def incident_target_q(target_id: int) -> Q:
    """A Q on Incident matching the incidents any registered link ties to the target."""
    query = Q(pk__in=[])
    for link in _links:
        ids = link.model.objects.filter(**{f"{link.target_field}_id": target_id}).values(
            f"{link.incident_field}_id"
        )
        query |= Q(pk__in=ids)
    return query


def _names(ids: set[int]) -> dict[int, str]:
    return _target_names[0].names(ids) if _target_names and ids else {}


def targets_for_incident(incident_id: int) -> list[str]:
    """Names of the databases an incident concerns."""
    ids: set[int] = set()
    for link in _links:
        ids.update(
            link.model.objects.filter(**{f"{link.incident_field}_id": incident_id}).values_list(
                f"{link.target_field}_id", flat=True
            )
        )
    return sorted(_names(ids).values())


def incident_counts_by_target(*, since: datetime.datetime) -> list[tuple[str, int]] | None:
    """Incidents declared since `since` per database (None when no app registered links)."""
    if not _links or not _target_names:
        return None
    pairs: set[tuple[int, int]] = set()
    for link in _links:
        pairs.update(
            link.model.objects.filter(
                **{f"{link.incident_field}__declared_at__gte": since}
            ).values_list(f"{link.target_field}_id", f"{link.incident_field}_id")
        )
    counts = Counter(target_id for target_id, _ in pairs)
    names = _names(set(counts))
    return sorted(
        ((names.get(pk, f"#{pk}"), n) for pk, n in counts.items()), key=lambda item: -item[1]
    )


def target_problems() -> list[str]:
    problems = []
    for link in _links:
        for name, related in (
            (link.incident_field, Incident),
            (link.target_field, None),
        ):
            try:
                field = link.model._meta.get_field(name)
            except FieldDoesNotExist:
                problems.append(f"TargetLink {link.model.__name__}.{name} does not exist.")
                continue
            if not field.many_to_one or (related and field.related_model is not related):
                problems.append(
                    f"TargetLink {link.model.__name__}.{name} is not a foreign key"
                    + (" to Incident." if related else ".")
                )
    for provider in _target_names:
        for name in ("choices", "names"):
            if not callable(getattr(provider, name)):
                problems.append(f"TargetNames.{name} is not callable.")
    return problems


# --- postmortems: action items, and who closes incidents -------------------------------------

_action_items: list[Callable[[], dict[str, Any]]] = []
_closers: list[str] = []


def register_action_items(summary: Callable[[], dict[str, Any]]) -> None:
    """`summary()` -> {"total", "open", "overdue"} (overdue None when items have no due date)."""
    _action_items[:] = [summary]


def action_items_summary() -> dict[str, Any] | None:
    return _action_items[0]() if _action_items else None


def register_incident_closer(app_label: str) -> None:
    """An app closes resolved incidents itself (postmortems: when the postmortem is published
    or waived), so the page offers no bare "Close"."""
    if app_label not in _closers:
        _closers.append(app_label)


def incidents_closed_by_an_app() -> bool:
    return bool(_closers)


# --- triage: where a next step's action takes the responder ----------------------------------


@dataclass(frozen=True)
class TriageActionTarget:
    """What a triage next step's action (incidents.triage.models.TriageAction) opens, given by
    the app that serves it: its panel, the check or runbook it is about, and, for a button in
    the triage panel, the route it POSTs to (with `incident_id`)."""

    action: str
    panel: str
    label: str
    check: str = ""
    runbook: str = ""
    run_route: str = ""


_triage_actions: dict[str, TriageActionTarget] = {}


def register_triage_action(target: TriageActionTarget) -> TriageActionTarget:
    _triage_actions[target.action] = target
    return target


def triage_action(action: str) -> TriageActionTarget | None:
    return _triage_actions.get(action)


def triage_problems() -> list[str]:
    from django.urls import NoReverseMatch, reverse

    from .triage.models import TriageAction

    problems = []
    keys = {p.key for p in _panels.values()}
    for target in _triage_actions.values():
        if target.action not in TriageAction.values:
            problems.append(f"Triage action {target.action!r} is not a TriageAction.")
        if target.panel not in keys:
            problems.append(f"Triage action {target.action!r}: no panel {target.panel!r}.")
        if target.run_route:
            try:
                reverse(target.run_route, kwargs={"incident_id": 1})
            except NoReverseMatch:
                problems.append(
                    f"Triage action {target.action!r}: route {target.run_route!r} does not exist."
                )
    return problems


# --- /metrics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsWriter:
    """Writes an app's families into the Prometheus exposition: `write(out, latencies)`, where
    `latencies` collects {model, task, start, end, phase} for quell_task_latency_seconds."""

    name: str
    write: Callable[[Any, list[dict]], None]
    order: int = 100


_metrics: dict[str, MetricsWriter] = {}


def register_metrics(writer: MetricsWriter) -> MetricsWriter:
    _metrics[writer.name] = writer
    return writer


def metrics_writers() -> list[MetricsWriter]:
    return sorted(_metrics.values(), key=lambda w: (w.order, w.name))


def other_problems() -> list[str]:
    problems = []
    for writer in _metrics.values():
        if not callable(writer.write):
            problems.append(f"MetricsWriter {writer.name!r}: write is not callable.")
    for summary in _action_items:
        if not callable(summary):
            problems.append("The action-items summary is not callable.")
    return problems + triage_problems()
