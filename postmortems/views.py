"""Web pages for postmortems: author (with preview, autosave and conflict display), review
workflow, action items, review scheduling, exports. Thin: forms in, services do the work."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from config.kernel.permissions import RESPONDER, VIEWER, require_role, role_required, user_has_role
from incidents.models import Incident, Status
from incidents.permissions import user_commands_incident

from . import selectors, services
from .exports import markdown_filename, postmortem_markdown
from .forms import (
    ActionItemForm,
    PostmortemForm,
    ReasonForm,
    RescheduleForm,
    ReviewForm,
    timeline_selection_from,
)
from .markdown import render_markdown
from .models import (
    SECTION_NAMES,
    SECTIONS,
    ActionCategory,
    ActionItem,
    ActionStatus,
    PostmortemStatus,
    ReviewStatus,
)
from .scheduling import review_rule
from .services import verification


def _postmortem_or_404(postmortem_id: int):
    return get_object_or_404(selectors.postmortem_list(), pk=postmortem_id)


def _detail_url(postmortem, anchor: str = "") -> str:
    url = reverse("postmortems:detail", kwargs={"postmortem_id": postmortem.pk})
    return f"{url}#{anchor}" if anchor else url


def _changes_from(form: PostmortemForm, data) -> dict:
    changes = {name: form.cleaned_data[name] for name in ["title", *SECTION_NAMES]}
    changes["timeline_selection"] = timeline_selection_from(data)
    return changes


def _permissions(user, postmortem) -> dict:
    responder = user_has_role(user, RESPONDER)
    commands = user_commands_incident(user, postmortem.incident)
    return {
        "can_edit": responder and postmortem.is_editable,
        "can_manage_items": responder and postmortem.status != PostmortemStatus.WAIVED,
        "can_schedule": responder and postmortem.status != PostmortemStatus.WAIVED,
        "can_submit": responder and postmortem.status == PostmortemStatus.DRAFT,
        "can_return": responder and postmortem.status == PostmortemStatus.IN_REVIEW,
        "can_publish": commands and postmortem.status == PostmortemStatus.IN_REVIEW,
        "can_waive": commands and postmortem.is_editable,
        "commands": commands,
    }


# The add-item form sits on the postmortem page beside the postmortem's own fields (its title
# too): ids of its own, so each label points at its field.
ITEM_FORM_IDS = "id_item_%s"


def _action_items_context(request, postmortem, form=None) -> dict:
    items = list(
        selectors.action_item_list(filters={"postmortem": postmortem}).select_related(
            "verification_run"
        )
    )
    today = timezone.localdate()
    for item in items:  # the verification window, as the list shows it
        item.hold_window = verification.hold_minutes(item) if item.check_key else 0
        item.hold_until = verification.hold_until(item)
    return {
        "postmortem": postmortem,
        "items": items,
        "today": today,
        "item_form": form or ActionItemForm(auto_id=ITEM_FORM_IDS),
        "verifying": any(item.is_verifying for item in items),
        "holding": any(item.is_holding for item in items),
        "can_manage_items": user_has_role(request.user, RESPONDER)
        and postmortem.status != PostmortemStatus.WAIVED,
    }


def _review_context(request, postmortem, form=None) -> dict:
    review = selectors.current_review(postmortem)
    proposed = None
    if form is None and (review is None or review.status != ReviewStatus.SCHEDULED):
        proposed = services.review_proposed_slot(postmortem)
        form = ReviewForm(
            initial={
                "starts_at": timezone.localtime(proposed).strftime("%Y-%m-%dT%H:%M"),
                "duration_minutes": _default_duration(),
                "location": postmortem.incident.bridge_url,
            }
        )
    reschedule_form = None
    if review is not None and review.status == ReviewStatus.SCHEDULED:
        reschedule_form = RescheduleForm(
            initial={
                "starts_at": timezone.localtime(review.starts_at).strftime("%Y-%m-%dT%H:%M"),
                "duration_minutes": review.duration_minutes,
            },
            auto_id="id_resched_%s",
        )
    return {
        "now": timezone.now(),
        "review": review,
        "review_form": form,
        "proposed": proposed,
        "reschedule_form": reschedule_form,
        "invitees": services.review_invitees(postmortem),
        "invitees_left_out": services.review_left_out(postmortem),
        "review_rule": review_rule(postmortem.incident.severity),
        "review_late": selectors.review_is_late(postmortem),
        "review_after_deadline": bool(
            review
            and review.status == ReviewStatus.SCHEDULED
            and postmortem.review_due_at
            and review.starts_at > postmortem.review_due_at
        ),
    }


def _default_duration() -> int:
    from django.conf import settings

    return settings.QUELL_REVIEW_DURATION_MINUTES


def _page(request, postmortem, *, form, selection=None, conflict=None, status=200, **extra):
    incident = postmortem.incident
    context = {
        "postmortem": postmortem,
        "incident": incident,
        "form": form,
        "timeline_rows": selectors.timeline_choices(postmortem, selection),
        "times": selectors.response_times(incident),
        "conflict": conflict,
        "perms": _permissions(request.user, postmortem),
        "revisions": postmortem.revisions.select_related("saved_by")[:8],
        "waive_form": ReasonForm(auto_id="id_waive_%s"),
        "publish_concerns": selectors.publish_concerns(postmortem),
        **_action_items_context(request, postmortem),
        **_review_context(request, postmortem),
        **extra,
    }
    if postmortem.is_editable and context["perms"]["can_edit"]:
        template = "postmortems/postmortem_edit.html"
    else:
        template = "postmortems/postmortem_view.html"
        context.update(_document_context(postmortem))
    return render(request, template, context, status=status)


def _document_context(postmortem, values: dict | None = None, selection=None) -> dict:
    values = values or {name: getattr(postmortem, name) for name in ["title", *SECTION_NAMES]}
    return {
        "doc_title": values.get("title") or postmortem.title,
        "doc_sections": [
            {"name": name, "label": label, "html": render_markdown(values.get(name, ""))}
            for name, label in SECTIONS
        ],
        "doc_timeline": selectors.selected_timeline(postmortem, selection),
        "times": selectors.response_times(postmortem.incident),
    }


def _initial(postmortem) -> dict:
    return {
        "version": postmortem.version,
        "editor": secrets.token_hex(8),
        "title": postmortem.title,
        **{name: getattr(postmortem, name) for name in SECTION_NAMES},
    }


@role_required(VIEWER)
def postmortem_detail(request, postmortem_id: int):
    """The postmortem: its editor for responders while editable, the document otherwise."""
    postmortem = _postmortem_or_404(postmortem_id)
    if request.method == "GET":
        return _page(request, postmortem, form=PostmortemForm(initial=_initial(postmortem)))
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    require_role(request.user, RESPONDER)
    saved, refusal = _save_editor(request, postmortem)
    if refusal is not None:
        return refusal
    messages.success(request, f"Saved (version {saved.version}).")
    return redirect(_detail_url(saved))


def _save_editor(request, postmortem):
    """Save the editor's form as posted: (the saved postmortem, None), or (None, the editor page
    again with every typed character and the errors or the other author's version)."""
    form = PostmortemForm(request.POST)
    selection = timeline_selection_from(request.POST)
    if not form.is_valid():
        return None, _page(request, postmortem, form=form, selection=selection, status=400)
    try:
        return _save(request, postmortem, form), None
    except services.PostmortemConflict as exc:
        # Keep every character the author typed; move the form onto the current version so that
        # saving again, after reading the other version, is a deliberate overwrite.
        data = request.POST.copy()
        data["version"] = str(exc.current.version)
        form = PostmortemForm(data)
        form.is_valid()
        current = _postmortem_or_404(postmortem.pk)
        conflict = _conflict_context(exc, current)
        return None, _page(
            request, current, form=form, selection=selection, conflict=conflict, status=409
        )
    except services.PostmortemError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        current = _postmortem_or_404(postmortem.pk)
        return None, _page(request, current, form=form, selection=selection, status=400)


def _save(request, postmortem, form, *, autosave: bool = False):
    """The valid form's changes, saved on the version the author started from."""
    return services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=form.cleaned_data["version"],
        changes=_changes_from(form, request.POST),
        actor=request.user,
        autosave=autosave,
        editor=form.cleaned_data.get("editor") or "",
    )


def _conflict_context(exc, current) -> dict:
    labels = dict([("title", "Title"), *SECTIONS, ("timeline_selection", "Timeline")])
    fields = []
    for name, theirs in exc.conflicts.items():
        entry = {"name": name, "label": labels.get(name, name), "theirs": theirs}
        if name == "timeline_selection":
            entry["timeline"] = selectors.selected_timeline(current, theirs)
        elif name != "title":
            entry["html"] = render_markdown(theirs)
        fields.append(entry)
    return {
        "message": str(exc),
        "fields": fields,
        "names": [f["name"] for f in fields],
        "by": current.updated_by,
        "at": current.updated_at,
        "version": current.version,
    }


@role_required(RESPONDER)
@require_POST
def postmortem_autosave(request, postmortem_id: int):
    """htmx: save in the background; answers a status line and the new version (out of band)."""
    if request.POST.get("autosave_paused") == "1":
        return HttpResponse(status=204)
    postmortem = _postmortem_or_404(postmortem_id)
    form = PostmortemForm(request.POST)
    context = {"postmortem": postmortem}
    if not form.is_valid():
        context["state"] = "invalid"
        return render(request, "postmortems/partials/autosave_status.html", context, status=400)
    try:
        saved = _save(request, postmortem, form, autosave=True)
    except services.PostmortemConflict as exc:
        context.update(state="conflict", message=str(exc))
        return render(request, "postmortems/partials/autosave_status.html", context, status=409)
    except services.PostmortemError as exc:
        context.update(state="error", message=str(exc))
        return render(request, "postmortems/partials/autosave_status.html", context, status=400)
    context.update(state="saved", postmortem=saved, saved_at=timezone.localtime())
    return render(request, "postmortems/partials/autosave_status.html", context)


@role_required(VIEWER)
@require_POST
def postmortem_preview(request, postmortem_id: int):
    """htmx: the document as it would read with the text in the form (nothing is saved)."""
    postmortem = _postmortem_or_404(postmortem_id)
    values = {name: request.POST.get(name, "") for name in ["title", *SECTION_NAMES]}
    context = {
        "postmortem": postmortem,
        "incident": postmortem.incident,
        "preview": True,
        **_document_context(postmortem, values, timeline_selection_from(request.POST)),
    }
    return render(request, "postmortems/partials/preview.html", context)


# Status actions that the editor's buttons send together with the editor's text, and the field
# that tells the editor's form was sent.
SAVES_FIRST = ("submit", "publish", "draft")
EDITOR_FIELD = "version"


@role_required(RESPONDER)
@require_POST
def postmortem_status(request, postmortem_id: int):
    """Submit for review, return to draft, publish (closes the incident) or waive."""
    postmortem = _postmortem_or_404(postmortem_id)
    action = request.POST.get("action", "")
    if action in ("publish", "waive") and not _permissions(request.user, postmortem)["commands"]:
        raise PermissionDenied(f"Only a commander or the Incident Commander may {action}.")
    if action in SAVES_FIRST and EDITOR_FIELD in request.POST:
        # Pressed in the editor: the text on screen is saved first, so that nothing typed since
        # the last autosave is lost or left out of the review. A refused save changes no status.
        saved, refusal = _save_editor(request, postmortem)
        if refusal is not None:
            return refusal
        if saved.version != postmortem.version:
            messages.success(request, f"Saved (version {saved.version}).")
        postmortem = saved
    try:
        if action == "submit":
            services.postmortem_submit_for_review(postmortem_id=postmortem.pk, actor=request.user)
            messages.success(request, "Submitted for review.")
        elif action == "draft":
            services.postmortem_return_to_draft(postmortem_id=postmortem.pk, actor=request.user)
            messages.success(request, "Back to draft.")
        elif action == "publish":
            services.postmortem_publish(
                postmortem_id=postmortem.pk,
                actor=request.user,
                override=request.POST.get("override") == "1",
            )
            messages.success(
                request, f"Published. Incident #{postmortem.incident_id} is now closed."
            )
        elif action == "waive":
            reason = ReasonForm(request.POST).data.get("reason", "")
            services.postmortem_waive(
                postmortem_id=postmortem.pk, reason=reason, actor=request.user
            )
            messages.success(request, f"Waived. Incident #{postmortem.incident_id} is now closed.")
        else:
            messages.error(request, "Unknown action.")
    except services.PostmortemError as exc:
        messages.error(request, str(exc))
    return redirect(_detail_url(postmortem))


@role_required(VIEWER)
@require_GET
def postmortem_export_markdown(request, postmortem_id: int):
    """The postmortem as a Markdown file."""
    postmortem = _postmortem_or_404(postmortem_id)
    response = HttpResponse(
        postmortem_markdown(postmortem), content_type="text/markdown; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{markdown_filename(postmortem)}"'
    return response


@role_required(VIEWER)
@require_GET
def postmortem_print(request, postmortem_id: int):
    """A printable page of the postmortem."""
    postmortem = _postmortem_or_404(postmortem_id)
    context = {
        "postmortem": postmortem,
        "incident": postmortem.incident,
        "items": selectors.action_item_list(filters={"postmortem": postmortem}),
        "review": selectors.current_review(postmortem),
        **_document_context(postmortem),
    }
    return render(request, "postmortems/postmortem_print.html", context)


@role_required(VIEWER)
def postmortem_for_incident(request, incident_id: int):
    """The incident's postmortem, or a page to start one (SEV4 drafts are optional)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    postmortem = selectors.postmortem_for_incident(incident_id=incident_id)
    if postmortem is not None:
        return redirect(_detail_url(postmortem))
    if request.method == "POST":
        require_role(request.user, RESPONDER)
        try:
            postmortem = services.postmortem_create(incident_id=incident.pk, actor=request.user)
        except services.PostmortemError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Postmortem draft started.")
            return redirect(_detail_url(postmortem))
    return render(
        request,
        "postmortems/postmortem_start.html",
        {
            "incident": incident,
            "can_start": user_has_role(request.user, RESPONDER)
            and incident.status == Status.RESOLVED,
        },
    )


@role_required(VIEWER)
@require_GET
def postmortem_list(request):
    """Every postmortem, with filters for status and late reviews."""
    status = request.GET.get("status", "")
    qs = (
        selectors.postmortem_list()
        .prefetch_related("reviews")
        .annotate(
            open_items=Count(
                "action_items",
                filter=Q(action_items__status__in=(ActionStatus.OPEN, ActionStatus.IN_PROGRESS)),
            )
        )
    )
    if status in PostmortemStatus.values:
        qs = qs.filter(status=status)
    rows = []
    for postmortem in qs[:200]:
        rows.append(
            {
                "postmortem": postmortem,
                "review": selectors.current_review(postmortem),
                "late": selectors.review_is_late(postmortem),
            }
        )
    if request.GET.get("late") == "1":
        rows = [row for row in rows if row["late"]]
    return render(
        request,
        "postmortems/postmortem_list.html",
        {
            "rows": rows,
            "status": status,
            "statuses": PostmortemStatus.choices,
            "late_only": request.GET.get("late") == "1",
            "overdue_count": selectors.action_items_overdue_count(),
        },
    )


# --- action items ----------------------------------------------------------------------------


def _items_response(request, postmortem, *, form=None, status=200):
    if request.htmx:
        return render(
            request,
            "postmortems/partials/action_items.html",
            _action_items_context(request, postmortem, form),
            status=status,
        )
    return redirect(_detail_url(postmortem, "action-items"))


@role_required(RESPONDER)
@require_POST
def action_item_create(request, postmortem_id: int):
    """Add an action item (htmx: answers the refreshed list; errors keep the typed values)."""
    postmortem = _postmortem_or_404(postmortem_id)
    form = ActionItemForm(request.POST, auto_id=ITEM_FORM_IDS)
    if form.is_valid():
        try:
            services.action_item_create(
                postmortem_id=postmortem.pk, actor=request.user, **form.service_kwargs()
            )
        except services.PostmortemError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            if not request.htmx:
                messages.success(request, "Action item added.")
            return _items_response(request, postmortem)
    if not request.htmx:
        messages.error(request, "The action item was not added: " + _errors_text(form))
        return redirect(_detail_url(postmortem, "action-items"))
    return _items_response(request, postmortem, form=form, status=400)


def _errors_text(form) -> str:
    return "; ".join(
        f"{form.fields[f].label or f}: {' '.join(e)}" if f in form.fields else " ".join(e)
        for f, e in form.errors.items()
    )


@role_required(VIEWER)
def action_item_edit(request, action_item_id: int):
    """Edit an item's details and status (done goes through its check gate)."""
    item = get_object_or_404(selectors.action_item_list(), pk=action_item_id)
    if request.method == "POST":
        require_role(request.user, RESPONDER)
        form = ActionItemForm(request.POST, with_status=True)
        if form.is_valid():
            try:
                item = services.action_item_update(
                    action_item_id=item.pk, actor=request.user, **form.service_kwargs()
                )
            except services.PostmortemError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                if item.is_verifying:
                    messages.info(
                        request, "Verification check started; the item closes when it passes."
                    )
                else:
                    messages.success(request, "Action item saved.")
                return redirect(_detail_url(item.postmortem, "action-items"))
        status = 400
    else:
        form = ActionItemForm(
            initial={
                "title": item.title,
                "category": item.category,
                "owner": item.owner_id,
                "due_date": item.due_date,
                "tracker_url": item.tracker_url,
                "description": item.description,
                "check_target": item.check_target_id,
                "check_key": item.check_key,
                "hold_minutes": item.hold_minutes,
                "status": item.status,
            },
            with_status=True,
        )
        status = 200
    return render(
        request,
        "postmortems/action_item_edit.html",
        {
            "item": item,
            "form": form,
            "can_edit": user_has_role(request.user, RESPONDER),
        },
        status=status,
    )


@role_required(RESPONDER)
@require_POST
def action_item_complete(request, action_item_id: int):
    """Mark done; a gated item starts its check and closes only if it passes."""
    item = get_object_or_404(ActionItem.objects.select_related("postmortem"), pk=action_item_id)
    try:
        item = services.action_item_complete(action_item_id=item.pk, actor=request.user)
    except services.PostmortemError as exc:
        messages.error(request, str(exc))
    else:
        if not request.htmx:
            messages.success(
                request,
                "Verification check started." if item.is_verifying else "Action item done.",
            )
    if request.POST.get("next") == "list":
        return redirect(reverse("postmortems:action-items") + "?overdue=1")
    return _items_response(request, item.postmortem)


@role_required(VIEWER)
@require_POST
def action_items_settle(request, postmortem_id: int):
    """htmx poll while a verification runs or a passed check holds: apply finished verdicts,
    run holding checks again when their window is up, answer the list."""
    postmortem = _postmortem_or_404(postmortem_id)
    gated = ActionItem.objects.filter(
        postmortem=postmortem, verification_status__in=("running", "holding")
    )
    for item in gated:
        if item.is_verifying:
            services.action_item_settle_verification(action_item_id=item.pk)
        elif item.is_holding:
            services.action_item_recheck_if_due(action_item_id=item.pk)
    return _items_response(request, postmortem)


@role_required(VIEWER)
@require_GET
def action_item_list(request):
    """Action items across postmortems: overdue, mine, by status or category."""
    overdue = request.GET.get("overdue") == "1"
    filters = {}
    status = request.GET.get("status", "")
    if status in ActionStatus.values:
        filters["status"] = status
    category = request.GET.get("category", "")
    if category in ActionCategory.values:
        filters["category"] = category
    if request.GET.get("mine") == "1":
        filters["owner"] = request.user
    items = selectors.action_item_list(filters=filters, overdue=overdue)[:500]
    return render(
        request,
        "postmortems/action_item_list.html",
        {
            "items": items,
            "today": timezone.localdate(),
            "overdue": overdue,
            "mine": request.GET.get("mine") == "1",
            "status": status,
            "category": category,
            "statuses": ActionStatus.choices,
            "categories": ActionCategory.choices,
            "can_manage_items": user_has_role(request.user, RESPONDER),
        },
    )
