"""Reads: incident lists and details with a fixed number of queries, staffing gaps, timelines."""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping

from django.contrib.postgres.fields import ArrayField
from django.db import connection as db_connection
from django.db.models import F, JSONField, Lookup, Prefetch, Q, QuerySet, Value
from django.db.models.expressions import RawSQL

from config.kernel.sql import fetch_instances, model_columns

from .models import Incident, ResponderAssignment, TimelineEvent
from .services import required_roles


def active_assignments_queryset() -> QuerySet[ResponderAssignment]:
    """Current role holders, with their users, in assignment order."""
    return ResponderAssignment.objects.filter(relieved_at__isnull=True).select_related("user")


def incident_list(*, filters: Mapping | None = None, filterset_class=None) -> QuerySet[Incident]:
    """Incidents with what a list row shows prefetched (no N+1), narrowed by `filters`.

    `filters` are query-string values (a QueryDict or a dict) run through `filterset_class`
    (incidents.filters.IncidentFilter, shared with the API); values that do not validate are
    ignored (incident_filterset gives the form that reports them).
    """
    if filters is None:
        return _incident_rows()
    return incident_filterset(filters, filterset_class=filterset_class).qs


def incident_filterset(filters: Mapping | None, *, filterset_class=None, **kwargs):
    """The bound FilterSet over incident_list's rows: `.qs` the incidents, `.form` the form."""
    # Imported here: the filters module uses incident_search below.
    from .filters import IncidentFilter

    filterset_class = filterset_class or IncidentFilter
    return filterset_class(filters, queryset=_incident_rows(), **kwargs)


def _incident_rows() -> QuerySet[Incident]:
    return Incident.objects.select_related("declared_by").prefetch_related(
        Prefetch(
            "assignments", queryset=active_assignments_queryset(), to_attr="active_assignments"
        )
    )


# What a list row shows: no long texts, no declaring user.
SUMMARY_FIELDS = (
    "id",
    "title",
    "severity",
    "status",
    "kind",
    "detection_source",
    "detected_by",
    "channel_name",
    "detected_at",
    "declared_at",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
    "updated_at",
)


# The current role holders of an incident, as an array of small JSON objects, read in the
# incident's own row. Written as SQL on purpose: the same subquery built with the ORM
# (ArraySubquery over JSONObject) costs more to compile on every request than the database
# spends running it, and a prefetch costs a query plus a model instance per holder and user.
# It refers to the outer table by name, so it only goes on unaliased Incident querysets.
_HOLDERS_SQL = """ARRAY(
    SELECT jsonb_build_object(
        'id', a.id, 'role', a.role, 'role_name', a.role_name, 'user_id', a.user_id,
        'username', u.username, 'assigned_at', a.assigned_at)
    FROM {assignment} a JOIN {user} u ON u.id = a.user_id
    WHERE a.incident_id = {incident}.id AND a.relieved_at IS NULL
    ORDER BY a.assigned_at, a.id)"""


def _holders_sql() -> str:
    return _HOLDERS_SQL.format(
        assignment=ResponderAssignment._meta.db_table,
        user=ResponderAssignment._meta.get_field("user").related_model._meta.db_table,
        incident=Incident._meta.db_table,
    )


def _current_holders() -> RawSQL:
    """`holders`: the current role holders of each incident, as a list of dicts."""
    return RawSQL(_holders_sql(), (), output_field=ArrayField(JSONField()))  # noqa: S611


def incident_summary_list() -> QuerySet[Incident]:
    """Incidents for the API list: the row's columns and, as `holders`, current role holders."""
    return Incident.objects.only(*SUMMARY_FIELDS).annotate(holders=_current_holders())


_DETAIL_SQL = """
SELECT {columns}, u.username AS declared_by_username, {holders} AS holders
FROM {incident} LEFT JOIN {user} u ON u.id = {incident}.declared_by_id
WHERE {incident}.id = %s
"""


@functools.cache
def _detail_statement() -> str:
    user_model = Incident._meta.get_field("declared_by").related_model
    return _DETAIL_SQL.format(
        columns=model_columns(Incident, Incident._meta.db_table),
        incident=Incident._meta.db_table,
        user=user_model._meta.db_table,
        holders=_holders_sql(),
    )


def incident_detail_get(*, incident_id: int) -> Incident:
    """One incident for the API detail: every column, its declaring user, `holders`.

    One constant SQL statement, prepared on the server (config.kernel.sql): the detail is the
    API's most frequent read, and the ORM would rebuild and recompile the same query, and
    PostgreSQL plan it again, for every request.
    """
    rows = fetch_instances(
        Incident, _detail_statement(), [incident_id], extras=("declared_by_username", "holders")
    )
    if not rows:
        raise Incident.DoesNotExist(f"Incident {incident_id} does not exist.")
    incident = rows[0]
    incident.holders = [h if isinstance(h, dict) else json.loads(h) for h in incident.holders]
    # The declaring user as far as the detail shows it (id and username), without a query.
    user_model = Incident._meta.get_field("declared_by").related_model
    incident.declared_by = (
        user_model(pk=incident.declared_by_id, username=incident.declared_by_username)
        if incident.declared_by_id
        else None
    )
    return incident


def incident_get(*, incident_id: int) -> Incident:
    """One incident with its current roles prefetched."""
    return incident_list().get(pk=incident_id)


def incident_exists(*, incident_id: int) -> bool:
    """Whether an incident with this id exists."""
    return Incident.objects.filter(pk=incident_id).exists()


def assignment_get(*, assignment_id: int) -> ResponderAssignment | None:
    """One assignment with the users it names, or None."""
    return (
        ResponderAssignment.objects.select_related("user", "assigned_by", "relieved_by")
        .filter(pk=assignment_id)
        .first()
    )


def incident_missing_roles(incident: Incident) -> list[str]:
    """Roles the severity policy requires that nobody holds now."""
    holders = getattr(incident, "holders", None)
    if holders is not None:
        held = {h["role"] for h in holders}
    else:
        active = getattr(incident, "active_assignments", None)
        if active is None:
            active = list(active_assignments_queryset().filter(incident=incident))
        held = {a.role for a in active}
    return [role for role in required_roles(incident.severity) if role not in held]


def assignment_history(*, incident_id: int) -> QuerySet[ResponderAssignment]:
    """Every assignment ever made on the incident, current and relieved."""
    return ResponderAssignment.objects.filter(incident_id=incident_id).select_related(
        "user", "assigned_by", "relieved_by"
    )


def timeline_for(
    *, incident_id: int, kinds: list[str] | None = None, newest_first: bool = False
) -> QuerySet[TimelineEvent]:
    """An incident's timeline, optionally filtered by kind."""
    qs = TimelineEvent.objects.filter(incident_id=incident_id).select_related("actor")
    if kinds:
        qs = qs.filter(kind__in=kinds)
    return qs.order_by("-occurred_at", "-id") if newest_first else qs.order_by("occurred_at", "id")


class _ILike(Lookup):
    """`column ILIKE pattern` as a filter expression (not registered as a lookup).

    Django's icontains compiles to UPPER(column) LIKE UPPER(pattern), for which PostgreSQL has
    no statistics: it guesses that almost nothing matches and reads the whole table before it
    can sort. With ILIKE it uses the column's statistics and, for a common word, walks the
    declared_at index newest first and stops at the page.
    """

    lookup_name = "quell_ilike"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]


SEARCH_FIELDS = ("title", "description", "channel_name", "detected_by")


def incident_search(qs: QuerySet[Incident], term: str) -> QuerySet[Incident]:
    """Case-insensitive match on title, description, channel and detected_by; '#123' by id."""
    term = term.strip()
    if not term:
        return qs
    # Wildcards in the term are taken literally.
    pattern = f"%{db_connection.ops.prep_for_like_query(term)}%"
    match = functools.reduce(
        operator.or_, (Q(_ILike(F(name), Value(pattern))) for name in SEARCH_FIELDS)
    )
    if term.lstrip("#").isdigit():
        match |= Q(pk=int(term.lstrip("#")))
    return qs.filter(match)


def identified_reason(*, incident_id: int) -> str:
    """The reason given when the incident moved to "identified" (the latest one), or ""."""
    from .models import EventKind, Status

    for ev in (
        TimelineEvent.objects.filter(incident_id=incident_id, kind=EventKind.STATUS_CHANGED)
        .only("data")
        .order_by("-occurred_at", "-id")
    ):
        data = ev.data or {}
        if data.get("to") == Status.IDENTIFIED and (data.get("reason") or "").strip():
            return str(data["reason"]).strip()
    return ""
