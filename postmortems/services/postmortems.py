"""Postmortem lifecycle: create on resolution, save with optimistic concurrency, review, publish
(which closes the incident) or waive (which closes it with a reason)."""

from __future__ import annotations

import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.kernel.actors import user_or_none
from incidents.models import EventKind, Incident, Status, TimelineEvent
from incidents.services import IncidentError, incident_transition

from .. import events
from ..models import (
    SECTIONS,
    VERSIONED_FIELDS,
    Postmortem,
    PostmortemRevision,
    PostmortemStatus,
    Review,
    ReviewStatus,
)
from ..scheduling import review_deadline
from ..selectors import publish_concerns, review_is_late
from .errors import PostmortemConflict, PostmortemError

MAX_SECTION_CHARS = 100_000
MAX_ANNOTATION_CHARS = 2_000
# Timeline entries pre-selected in a new draft: the turning points of the response.
KEY_EVENT_KINDS = (
    EventKind.DECLARED,
    EventKind.STATUS_CHANGED,
    EventKind.SEVERITY_CHANGED,
    EventKind.REMEDIATION,
    EventKind.INTEGRITY,
)
FIELD_LABELS = {"title": "Title", **dict(SECTIONS), "timeline_selection": "Timeline"}
# Sections that must say something before the report is published.


def _lock(postmortem_id: int) -> Postmortem:
    try:
        return (
            Postmortem.objects.select_for_update(of=("self",))
            .select_related("incident")
            .get(pk=postmortem_id)
        )
    except Postmortem.DoesNotExist:
        raise PostmortemError(
            f"Postmortem {postmortem_id} does not exist.", field="postmortem"
        ) from None


def _impact_prefill(incident: Incident) -> str:
    lines = []
    if incident.users_affected_percent is not None:
        pct = incident.users_affected_percent.normalize()
        lines.append(f"- Users affected: {pct:f}%")
    if incident.functionality_impacted:
        lines.append(f"- Functionality impacted: {incident.functionality_impacted}")
    if incident.business_impact:
        lines.append(f"- Business impact: {incident.business_impact}")
    if incident.scope:
        lines.append(f"- Scope (queries/tables): {incident.scope}")
    return "\n".join(lines)


def data_impact_prefill(incident_id: int) -> str:
    """What the incident's data integrity verifications recorded, as a Markdown list."""
    events = TimelineEvent.objects.filter(
        incident_id=incident_id, kind=EventKind.INTEGRITY
    ).order_by("occurred_at", "id")
    lines = [f"- {timezone.localtime(e.occurred_at):%Y-%m-%d %H:%M}: {e.message}" for e in events]
    if not lines:
        return ""
    return "Data integrity verification recorded during the incident:\n\n" + "\n".join(lines)


def _revision(
    postmortem: Postmortem, *, actor=None, autosave: bool = False, editor: str = ""
) -> None:
    PostmortemRevision.objects.create(
        postmortem=postmortem,
        version=postmortem.version,
        content=postmortem.snapshot(),
        saved_by=user_or_none(actor),
        autosave=autosave,
        editor=editor[:64],
    )


@transaction.atomic
def postmortem_create(*, incident_id: int, actor=None) -> Postmortem:
    """Open the draft of a resolved incident's postmortem (returns the existing one if any)."""
    incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
    if incident is None:
        raise PostmortemError(f"Incident {incident_id} does not exist.", field="incident")
    existing = Postmortem.objects.filter(incident=incident).first()
    if existing is not None:
        return existing
    if incident.status != Status.RESOLVED:
        raise PostmortemError(
            f"Incident #{incident.pk} is {incident.status}: a postmortem starts once it is "
            "resolved.",
            field="incident",
        )
    key_events = TimelineEvent.objects.filter(
        incident=incident, kind__in=KEY_EVENT_KINDS
    ).values_list("pk", flat=True)
    now = timezone.now()
    postmortem = Postmortem(
        incident=incident,
        title=incident.title,
        summary=incident.description,
        impact=_impact_prefill(incident),
        data_impact=data_impact_prefill(incident.pk),
        timeline_selection={str(pk): "" for pk in key_events},
        review_due_at=review_deadline(
            resolved_at=incident.resolved_at or now, severity=incident.severity
        ),
        created_by=user_or_none(actor),
        updated_by=user_or_none(actor),
        created_at=now,
        updated_at=now,
    )
    try:
        with transaction.atomic():
            postmortem.save()
    except IntegrityError:
        # Created concurrently (the incident lock makes this unlikely, not impossible).
        return Postmortem.objects.get(incident=incident)
    _revision(postmortem, actor=actor)
    events.postmortem_created_event(postmortem, actor=actor)
    return postmortem


@transaction.atomic
def postmortem_recompute_deadline(*, postmortem_id: int) -> Postmortem:
    """Recompute the review deadline from the incident's current severity and resolution."""
    postmortem = _lock(postmortem_id)
    incident = postmortem.incident
    if not postmortem.is_editable or incident.resolved_at is None:
        return postmortem
    due = review_deadline(resolved_at=incident.resolved_at, severity=incident.severity)
    if due != postmortem.review_due_at:
        postmortem.review_due_at = due
        postmortem.review_deadline_missed_at = None
        postmortem.save(update_fields=["review_due_at", "review_deadline_missed_at"])
        events.review_deadline_changed_event(postmortem)
    return postmortem


def _clean_selection(incident_id: int, selection) -> dict[str, str]:
    if not isinstance(selection, dict):
        raise PostmortemError(
            "The timeline selection maps event ids to annotations.", field="timeline_selection"
        )
    cleaned: dict[str, str] = {}
    for key, note in selection.items():
        try:
            event_id = int(key)
        except (TypeError, ValueError):
            raise PostmortemError(
                f"{key!r} is not a timeline event id.", field="timeline_selection"
            ) from None
        note = "" if note is None else str(note)
        if len(note) > MAX_ANNOTATION_CHARS:
            raise PostmortemError(
                f"Annotations are limited to {MAX_ANNOTATION_CHARS} characters.",
                field="timeline_selection",
            )
        cleaned[str(event_id)] = note
    known = set(
        TimelineEvent.objects.filter(
            incident_id=incident_id, pk__in=[int(k) for k in cleaned]
        ).values_list("pk", flat=True)
    )
    unknown = sorted(int(k) for k in cleaned if int(k) not in known)
    if unknown:
        raise PostmortemError(
            f"Not events of this incident's timeline: {', '.join(map(str, unknown))}.",
            field="timeline_selection",
        )
    return cleaned


def _validate_changes(postmortem: Postmortem, changes: dict) -> dict:
    unknown = set(changes) - set(VERSIONED_FIELDS)
    if unknown:
        raise PostmortemError(f"Not editable: {', '.join(sorted(unknown))}.")
    cleaned = {}
    for name, value in changes.items():
        if name == "timeline_selection":
            cleaned[name] = _clean_selection(postmortem.incident_id, value)
            continue
        value = "" if value is None else str(value)
        # Browsers send CRLF; store LF so that versions compare equal across clients.
        value = value.replace("\r\n", "\n")
        if name == "title":
            value = value.strip()
            if not value:
                raise PostmortemError("A title is required.", field="title")
            if len(value) > 200:
                raise PostmortemError("Titles are limited to 200 characters.", field="title")
        elif len(value) > MAX_SECTION_CHARS:
            raise PostmortemError(
                f"Sections are limited to {MAX_SECTION_CHARS} characters.", field=name
            )
        cleaned[name] = value
    return cleaned


def _only_own_saves_since(postmortem: Postmortem, version: int, editor: str) -> bool:
    if not editor:
        return False
    editors = set(
        PostmortemRevision.objects.filter(postmortem=postmortem, version__gt=version).values_list(
            "editor", flat=True
        )
    )
    return editors == {editor}


def _merge_value(base, theirs, mine):
    """Three-way merge of one value: (merged, conflicted)."""
    if mine == theirs:
        return theirs, False
    if theirs == base:
        return mine, False
    if mine == base:
        return theirs, False
    return theirs, True


def _merge_selection(base: dict, theirs: dict, mine: dict) -> tuple[dict, bool]:
    """Merge timeline selections entry by entry (absent = not selected)."""
    merged, conflicted = {}, False
    for key in sorted({*base, *theirs, *mine}, key=int):
        value, clash = _merge_value(base.get(key), theirs.get(key), mine.get(key))
        conflicted = conflicted or clash
        if value is not None:
            merged[key] = value
    return merged, conflicted


@transaction.atomic
def postmortem_update(
    *,
    postmortem_id: int,
    expected_version: int,
    changes: dict,
    actor=None,
    autosave: bool = False,
    editor: str = "",
) -> Postmortem:
    """Save edits made on top of `expected_version`, merging what others saved meanwhile.

    If another author saved since, their changes and ours are merged field by field against the
    version we started from; where both changed the same text differently nothing is written and
    PostmortemConflict carries both versions, so the caller can show them and keep our text.
    `editor` identifies one open form: versions saved by that same form (its own autosaves) are
    not somebody else's edits.
    """
    postmortem = _lock(postmortem_id)
    if not postmortem.is_editable:
        raise PostmortemError(
            f"This postmortem is {postmortem.get_status_display().lower()} and can no longer be "
            "edited.",
            field="status",
        )
    changes = _validate_changes(postmortem, changes)
    current = postmortem.snapshot()
    if expected_version != postmortem.version and not _only_own_saves_since(
        postmortem, expected_version, editor
    ):
        base_revision = PostmortemRevision.objects.filter(
            postmortem=postmortem, version=expected_version
        ).first()
        if base_revision is None:
            raise PostmortemError(
                f"Version {expected_version} of this postmortem does not exist.", field="version"
            )
        base = base_revision.content
        merged, conflicts = {}, {}
        for name, mine in changes.items():
            if name == "timeline_selection":
                value, clash = _merge_selection(
                    base.get(name) or {}, current[name] or {}, mine or {}
                )
            else:
                value, clash = _merge_value(base.get(name, ""), current[name], mine)
            if clash:
                conflicts[name] = current[name]
            merged[name] = value
        if conflicts:
            editor = postmortem.updated_by.get_username() if postmortem.updated_by else "someone"
            raise PostmortemConflict(
                f"{editor} saved version {postmortem.version} while you were editing version "
                f"{expected_version}, and changed the same text: "
                f"{', '.join(FIELD_LABELS.get(name, name) for name in conflicts)}. "
                "Nothing was overwritten.",
                current=postmortem,
                conflicts=conflicts,
                mine=changes,
            )
        changes = merged
    changed = {name: value for name, value in changes.items() if current[name] != value}
    if not changed:
        return postmortem
    for name, value in changed.items():
        setattr(postmortem, name, value)
    postmortem.version += 1
    postmortem.updated_at = timezone.now()
    postmortem.updated_by = user_or_none(actor)
    postmortem.save(update_fields=[*changed, "version", "updated_at", "updated_by"])
    _revision(postmortem, actor=actor, autosave=autosave, editor=editor)
    return postmortem


def _set_status(
    postmortem: Postmortem,
    status: str,
    *,
    actor,
    reason: str = "",
    overridden: list[str] | None = None,
    **fields,
) -> None:
    from_status = postmortem.status
    postmortem.status = status
    for name, value in fields.items():
        setattr(postmortem, name, value)
    postmortem.updated_at = timezone.now()
    postmortem.updated_by = user_or_none(actor)
    postmortem.save(update_fields=["status", *fields, "updated_at", "updated_by"])
    events.postmortem_status_changed_event(
        postmortem, from_status=from_status, actor=actor, reason=reason, overridden=overridden
    )


@transaction.atomic
def postmortem_submit_for_review(*, postmortem_id: int, actor=None) -> Postmortem:
    """Draft -> in review."""
    postmortem = _lock(postmortem_id)
    if postmortem.status == PostmortemStatus.IN_REVIEW:
        return postmortem
    if postmortem.status != PostmortemStatus.DRAFT:
        raise PostmortemError(
            f"Only a draft can go to review; this one is {postmortem.get_status_display()}.",
            field="status",
        )
    if not postmortem.summary.strip():
        raise PostmortemError("Write a summary before asking for review.", field="summary")
    _set_status(
        postmortem,
        PostmortemStatus.IN_REVIEW,
        actor=actor,
        submitted_at=timezone.now(),
    )
    return postmortem


@transaction.atomic
def postmortem_return_to_draft(*, postmortem_id: int, actor=None) -> Postmortem:
    """In review -> draft (more work needed)."""
    postmortem = _lock(postmortem_id)
    if postmortem.status == PostmortemStatus.DRAFT:
        return postmortem
    if postmortem.status != PostmortemStatus.IN_REVIEW:
        raise PostmortemError(
            f"Only a postmortem in review goes back to draft; this one is "
            f"{postmortem.get_status_display()}.",
            field="status",
        )
    _set_status(postmortem, PostmortemStatus.DRAFT, actor=actor)
    return postmortem


def _close_incident(postmortem: Postmortem, *, actor, reason: str) -> None:
    incident = postmortem.incident
    if incident.status == Status.CLOSED:
        return
    if incident.status != Status.RESOLVED:
        raise PostmortemError(
            f"Incident #{incident.pk} is {incident.status} again (reopened); resolve it before "
            "closing its postmortem.",
            field="status",
        )
    try:
        incident_transition(
            incident_id=incident.pk,
            to_status=Status.CLOSED,
            actor=actor,
            reason=reason,
            expected_status=Status.RESOLVED,
        )
    except IncidentError as exc:
        raise PostmortemError(str(exc), field="status") from exc


@transaction.atomic
def postmortem_publish(*, postmortem_id: int, actor=None, override: bool = False) -> Postmortem:
    """In review -> published; closes the incident (resolved -> closed) in the same transaction.

    Publishing before the review is held, or with a core section empty, needs `override`; the
    timeline records who overrode what.
    """
    postmortem = _lock(postmortem_id)
    if postmortem.status == PostmortemStatus.PUBLISHED:
        return postmortem
    if postmortem.status != PostmortemStatus.IN_REVIEW:
        raise PostmortemError(
            "Submit the postmortem for review before publishing it "
            f"(it is {postmortem.get_status_display().lower()}).",
            field="status",
        )
    concerns = publish_concerns(postmortem)
    if concerns and not override:
        raise PostmortemError(
            f"Publishing now needs confirmation: {'; '.join(concerns)}. Confirm to publish "
            "anyway (the timeline records who did).",
            field="override",
        )
    now = timezone.now()
    _set_status(
        postmortem,
        PostmortemStatus.PUBLISHED,
        actor=actor,
        reason=f"published over: {'; '.join(concerns)}" if concerns else "",
        overridden=concerns,
        published_at=now,
        published_by=user_or_none(actor),
    )
    _close_incident(postmortem, actor=actor, reason="Postmortem published")
    return postmortem


@transaction.atomic
def postmortem_waive(*, postmortem_id: int, reason: str, actor=None) -> Postmortem:
    """Skip the postmortem with a stated reason; closes the incident and cancels its review."""
    reason = (reason or "").strip()
    if not reason:
        raise PostmortemError("Say why the postmortem is waived.", field="reason")
    postmortem = _lock(postmortem_id)
    if postmortem.status == PostmortemStatus.WAIVED:
        return postmortem
    if not postmortem.is_editable:
        raise PostmortemError(
            f"A {postmortem.get_status_display().lower()} postmortem cannot be waived.",
            field="status",
        )
    _set_status(
        postmortem,
        PostmortemStatus.WAIVED,
        actor=actor,
        reason=reason,
        waived_at=timezone.now(),
        waived_by=user_or_none(actor),
        waived_reason=reason,
    )
    from .reviews import _cancel_locked

    for review in Review.objects.select_for_update().filter(
        postmortem=postmortem, status=ReviewStatus.SCHEDULED
    ):
        _cancel_locked(review, actor=actor, reason="Postmortem waived")
    _close_incident(postmortem, actor=actor, reason=f"Postmortem waived: {reason}")
    return postmortem


@transaction.atomic
def postmortem_flag_missed_deadline(
    *, postmortem_id: int, now: datetime.datetime | None = None
) -> bool:
    """Flag (once) a postmortem whose review deadline passed without a review; True if flagged."""
    postmortem = _lock(postmortem_id)
    if postmortem.review_deadline_missed_at is not None:
        return False
    if not review_is_late(postmortem, now=now):
        return False
    postmortem.review_deadline_missed_at = now or timezone.now()
    postmortem.save(update_fields=["review_deadline_missed_at"])
    events.review_deadline_missed_event(postmortem)
    return True
