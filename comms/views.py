"""Web pages: the public status page (cached, no login) and the incident comms panel."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)
from django_htmx.http import reswap, retarget

from config.accounts import ratelimit
from config.accounts.client_ip import client_ip
from config.kernel.permissions import RESPONDER, VIEWER, user_has_role
from incidents.models import Incident
from incidents.services import IncidentError

from . import selectors, services, status_cache
from .forms import ComposeForm, SubscribeForm
from .models import Audience, Delivery, MessageTemplate, StatusUpdate

# --- Public status page ---------------------------------------------------------------------


def cached_response(kind: str, request) -> HttpResponse:
    """One representation of the status page, from cache (comms.middleware uses it too)."""
    raw, compressed, digest = status_cache.get(kind)
    use_gzip = "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", "")
    # Each encoding is its own representation, so each has its own validator.
    etag = f'"{digest}-gz"' if use_gzip else f'"{digest}"'
    if etag in request.META.get("HTTP_IF_NONE_MATCH", ""):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(
            compressed if use_gzip else raw, content_type=status_cache.CONTENT_TYPES[kind]
        )
        if use_gzip:
            response["Content-Encoding"] = "gzip"
    response["ETag"] = etag
    response["Vary"] = "Accept-Encoding"
    # Browsers and proxies may keep it briefly; the page itself is rebuilt on change.
    response["Cache-Control"] = "public, max-age=15"
    if kind == "json":
        response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def status_page(request):
    """The public status page (HTML), served from cache."""
    return cached_response("html", request)


@require_safe
def status_json(request):
    """The status page as JSON."""
    return cached_response("json", request)


@require_safe
def status_feed(request):
    """The status page's updates as an Atom feed."""
    return cached_response("atom", request)


def _subscribe_rate_limited(request) -> int | None:
    """Seconds to wait when this client address sent more than QUELL_STATUS_SUBSCRIBE_PER_HOUR
    subscription requests this hour, else None.

    The public form sends mail to whatever address it is given (a confirmation only), so one
    client may not use it as a mail cannon. The address is the one every limit uses
    (config.accounts.client_ip: the trusted proxy header behind a proxy, not the proxy's address).
    """
    return ratelimit.hit(
        "comms-subscribe",
        client_ip(request),
        limit=settings.QUELL_STATUS_SUBSCRIBE_PER_HOUR,
        window_s=3600,
    )


@require_http_methods(["GET", "POST"])
def subscribe(request):
    """Start an e-mail subscription; the address gets a confirmation link.

    The status page itself is cached and shared, so it links here: this page is rendered per
    visitor and its form carries a CSRF token like every other form.
    """
    if request.method == "GET":
        return render(request, "comms/subscribe_result.html", {"form": SubscribeForm()})
    retry_after = _subscribe_rate_limited(request)
    if retry_after is not None:
        response = render(
            request,
            "comms/subscribe_result.html",
            {"error": "Too many subscription requests from your address; try again later."},
            status=429,
        )
        response["Retry-After"] = str(retry_after)
        return response
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return render(request, "comms/subscribe_result.html", {"form": form}, status=400)
    try:
        services.subscriber_subscribe(email=form.cleaned_data["email"])
    except IncidentError as exc:
        form.add_error("email", str(exc))
        return render(request, "comms/subscribe_result.html", {"form": form}, status=400)
    # The same answer whether or not the address was known: nothing to learn from it.
    return render(request, "comms/subscribe_result.html", {"sent": True})


@require_http_methods(["GET", "POST"])
def subscribe_confirm(request, token):
    """Confirm a subscription (double opt-in). GET shows a Confirm button and changes nothing:
    mail scanners open every link in a message, and must not confirm on the reader's behalf.
    The button POSTs (with CSRF) and confirms."""
    try:
        if request.method == "GET":
            pending = services.subscriber_confirm_check(token=token)
            return render(
                request,
                "comms/subscribe_result.html",
                {"confirm_token": token, "pending": pending},
            )
        sub = services.subscriber_confirm(token=token)
    except IncidentError as exc:
        return render(request, "comms/subscribe_result.html", {"error": str(exc)}, status=400)
    return render(request, "comms/subscribe_result.html", {"confirmed": sub})


@csrf_exempt  # RFC 8058 one-click: mail clients POST without a token; the signed link is it
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """Unsubscribe: GET shows one button (link scanners must not unsubscribe people), POST
    (the button, or a mail client's one-click List-Unsubscribe-Post) does it."""
    if request.method == "GET":
        try:
            services.subscriber_unsubscribe_check(token=token)
        except IncidentError as exc:
            return render(request, "comms/unsubscribe.html", {"error": str(exc)}, status=400)
        return render(request, "comms/unsubscribe.html", {"token": token})
    try:
        sub = services.subscriber_unsubscribe(token=token)
    except IncidentError as exc:
        return render(request, "comms/unsubscribe.html", {"error": str(exc)}, status=400)
    return render(request, "comms/unsubscribe.html", {"done": sub})


# --- Incident panel -------------------------------------------------------------------------


def _query_pk(request, name: str) -> int:
    """An id from the query string: a 404 naming the parameter when it is not a number (the ORM
    would raise ValueError, a 500, for ?template=abc)."""
    value = request.GET.get(name, "")
    if not value.isascii() or not value.isdigit():
        raise Http404(f"No {name} with the id {value!r}: an id is a number.")
    return int(value)


PUBLISH_REFUSAL = (
    "You may not publish external updates on this incident: a commander, or this incident's "
    "Incident Commander or Communications Lead, publishes them. Save it as a draft for them."
)


def _require(user, role: str) -> None:
    if not user_has_role(user, role):
        raise PermissionDenied(f"You need the {role} role for this.")


def _panel_context(request, incident: Incident, **extra) -> dict:
    updates = list(selectors.updates_for_incident(incident_id=incident.pk)[:30])
    ctx = {
        "incident": incident,
        "due": selectors.incident_update_due(incident),
        "drafts": [u for u in updates if not u.is_published],
        "published": [u for u in updates if u.is_published],
        "failed": list(selectors.failed_deliveries(incident_id=incident.pk)[:20]),
        "pending_count": Delivery.objects.filter(
            incident=incident, state__in=["pending", "sending", "retrying"]
        ).count(),
        "templates": selectors.template_list(),
        "can_write": user_has_role(request.user, RESPONDER),
        "can_publish_external": services.can_publish(request.user, incident, Audience.EXTERNAL),
        "public_behind": _public_behind(incident, updates),
        "suggested": selectors.suggested_template(incident, audience=Audience.INTERNAL),
        "delivery_gaps": selectors.delivery_gaps(incident),
    }
    ctx.update(extra)
    return ctx


def _public_behind(incident: Incident, updates: list[StatusUpdate]) -> bool:
    """True when the incident is resolved but the status page still shows it unresolved."""
    external = [u for u in updates if u.is_published and u.audience == Audience.EXTERNAL]
    if not external or incident.is_open:
        return False
    return external[0].status != "resolved"


@login_required
@require_GET
def incident_panel(request, incident_id):
    """The comms panel of an incident page (htmx partial)."""
    _require(request.user, VIEWER)
    incident = get_object_or_404(Incident, pk=incident_id)
    return render(request, "comms/partials/panel.html", _panel_context(request, incident))


def _compose_form(incident: Incident, template: MessageTemplate | None, audience: str | None):
    """A composer pre-filled from the template rendered for the incident."""
    preview = services.update_preview(
        incident_id=incident.pk,
        template_id=template.pk if template else None,
        audience=audience or (template.audience if template else Audience.INTERNAL),
        subject=None if template else "",
        body=None if template else "",
    )
    initial = {
        "template": template.pk if template else None,
        "audience": preview.audience,
        "status": preview.status,
        "subject": preview.subject,
        "body": preview.body,
    }
    for pk, state in preview.component_states.items():
        initial[f"component_{pk}"] = state
    return ComposeForm(initial=initial), preview


def _draft_form(draft: StatusUpdate) -> dict:
    """The composer filled with a saved draft, and what it still lacks."""
    initial = {
        "template": draft.template_id,
        "draft": draft.pk,
        "audience": draft.audience,
        "status": draft.status,
        "subject": draft.subject,
        "body": draft.body,
    }
    for pk, state in (draft.component_states or {}).items():
        initial[f"component_{pk}"] = state
    preview = services.update_preview(
        incident_id=draft.incident_id,
        audience=draft.audience,
        subject=draft.subject,
        body=draft.body,
        status=draft.status,
    )
    return {"form": ComposeForm(initial=initial), "preview": preview, "editing": draft}


@login_required
@require_GET
def compose(request, incident_id):
    """The composer, filled from a chosen template (or the one that fits the incident)."""
    _require(request.user, RESPONDER)
    incident = get_object_or_404(Incident, pk=incident_id)
    audience = request.GET.get("audience")
    if audience not in Audience.values:
        audience = None
    template = None
    if request.GET.get("draft"):
        draft = get_object_or_404(
            StatusUpdate, pk=_query_pk(request, "draft"), incident=incident, state="draft"
        )
        return render(
            request,
            "comms/partials/composer.html",
            {
                "incident": incident,
                **_draft_form(draft),
                "templates": selectors.template_list(),
                "can_publish_external": services.can_publish(
                    request.user, incident, Audience.EXTERNAL
                ),
            },
        )
    if request.GET.get("template"):
        template = get_object_or_404(
            MessageTemplate, pk=_query_pk(request, "template"), active=True
        )
    elif audience:
        template = selectors.suggested_template(incident, audience=audience)
    try:
        form, preview = _compose_form(incident, template, audience)
    except IncidentError as exc:
        return render(
            request,
            "comms/partials/composer.html",
            {"incident": incident, "error": str(exc), "templates": selectors.template_list()},
            status=400,
        )
    return render(
        request,
        "comms/partials/composer.html",
        {
            "incident": incident,
            "form": form,
            "preview": preview,
            "templates": selectors.template_list(),
            "chosen": template,
            "freshness": selectors.diagnostics_freshness(incident.pk),
            "can_publish_external": services.can_publish(request.user, incident, Audience.EXTERNAL),
        },
    )


@login_required
@require_POST
def compose_submit(request, incident_id):
    """Preview, save as draft, or publish what the author wrote."""
    _require(request.user, RESPONDER)
    incident = get_object_or_404(Incident, pk=incident_id)
    form = ComposeForm(request.POST)
    action = request.POST.get("action", "preview")
    ctx = {
        "incident": incident,
        "form": form,
        "templates": selectors.template_list(),
        "can_publish_external": services.can_publish(request.user, incident, Audience.EXTERNAL),
    }
    if not form.is_valid():
        return render(request, "comms/partials/composer.html", ctx, status=400)
    data = form.cleaned_data
    template = data["template"]
    if template is not None and template.audience != data["audience"]:
        # The author switched the audience after starting from a template: the text is theirs
        # now, and the template's audience must not refuse it.
        template = None
    fields = {
        "template_id": template.pk if template else None,
        "audience": data["audience"],
        "status": data["status"],
        "subject": data["subject"],
        "body": data["body"],
    }
    try:
        if action == "preview":
            ctx["preview"] = services.update_preview(incident_id=incident.pk, **fields)
            ctx["checked"] = True
            return render(request, "comms/partials/composer.html", ctx)
        states = form.component_states()
        draft_id = data.get("draft")
        if draft_id is not None:
            get_object_or_404(StatusUpdate, pk=draft_id, incident=incident)
        if action == "publish" and data["audience"] == Audience.INTERNAL:
            # Internal updates may go out with blanks, but only when the author says so.
            markers = services.update_preview(incident_id=incident.pk, **fields).markers
            if markers and not request.POST.get("confirm_markers"):
                ctx["confirm_markers"] = markers
                return render(request, "comms/partials/composer.html", ctx)
        if action == "publish":
            if not services.can_publish(request.user, incident, data["audience"]):
                # Refused inside the composer, the author's text kept (a 403 page would lose it).
                form.add_error(None, PUBLISH_REFUSAL)
                ctx["refused"] = True
                with contextlib.suppress(IncidentError):
                    ctx["preview"] = services.update_preview(incident_id=incident.pk, **fields)
                return render(request, "comms/partials/composer.html", ctx, status=403)
            edit, create = services.update_edit_and_publish, services.update_create_and_publish
            message = "Update published."
        else:
            edit, create = services.update_edit, services.update_create
            message = "Draft saved."
        if draft_id is not None:
            edit(
                update_id=draft_id,
                actor=request.user,
                subject=fields["subject"],
                body=fields["body"],
                status=fields["status"],
                component_states=states,
            )
        else:
            create(incident_id=incident.pk, actor=request.user, component_states=states, **fields)
    except IncidentError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        # The form error already says what is wrong if even the preview fails.
        with contextlib.suppress(IncidentError):
            ctx["preview"] = services.update_preview(incident_id=incident.pk, **fields)
        return render(request, "comms/partials/composer.html", ctx, status=400)
    response = render(
        request, "comms/partials/panel.html", _panel_context(request, incident, notice=message)
    )
    # The form swapped itself; after publishing the whole panel is refreshed instead.
    return reswap(retarget(response, f"#comms-panel-{incident.pk}"), "innerHTML")


def _panel_action(request, incident, action, *, done: str) -> HttpResponse:
    """Run a panel button's service call; the panel again with `done`, or the refusal as 400."""
    try:
        action()
        notice, status = done, 200
    except IncidentError as exc:
        notice, status = str(exc), 400
    return render(
        request,
        "comms/partials/panel.html",
        _panel_context(request, incident, notice=notice, notice_error=status != 200),
        status=status,
    )


@login_required
@require_POST
def draft_publish(request, update_id):
    """Publish a saved draft from the panel."""
    _require(request.user, RESPONDER)
    update = get_object_or_404(StatusUpdate.objects.select_related("incident"), pk=update_id)
    incident = update.incident
    if not services.can_publish(request.user, incident, update.audience):
        return render(
            request,
            "comms/partials/panel.html",
            _panel_context(
                request, incident, notice=PUBLISH_REFUSAL, notice_error=True, refused=True
            ),
            status=403,
        )
    return _panel_action(
        request,
        incident,
        lambda: services.update_publish(update_id=update.pk, actor=request.user),
        done="Update published.",
    )


@login_required
@require_POST
def draft_discard(request, update_id):
    """Delete a draft from the panel."""
    _require(request.user, RESPONDER)
    update = get_object_or_404(StatusUpdate.objects.select_related("incident"), pk=update_id)
    incident = update.incident
    return _panel_action(
        request,
        incident,
        lambda: services.update_discard(update_id=update.pk, actor=request.user),
        done="Draft discarded.",
    )


@login_required
@require_POST
def delivery_retry(request, delivery_id):
    """Retry a failed delivery from the panel."""
    _require(request.user, RESPONDER)
    delivery = get_object_or_404(Delivery, pk=delivery_id)
    incident = get_object_or_404(Incident, pk=delivery.incident_id)
    return _panel_action(
        request,
        incident,
        lambda: services.delivery_retry(delivery_id=delivery.pk, actor=request.user),
        done=f"Retrying delivery to {delivery.destination}.",
    )
