"""REST endpoints for postmortems, action items and reviews: thin views over services and
selectors, with the role checks of incidents.permissions."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from config.kernel.api import error_body
from config.kernel.headers import (
    CONDITIONAL_GET_PARAMETERS,
    IF_MATCH_PARAMETERS,
    NOT_MODIFIED,
    PRECONDITION,
    conditional_response,
    created,
    guarded_write,
)
from config.kernel.openapi import ERRORS as COMMON_ERRORS
from config.kernel.pagination import StandardPagination
from config.kernel.permissions import ReadViewerWriteResponder, user_has_role
from incidents.permissions import user_commands_incident

from .. import selectors, services
from ..exports import markdown_filename, postmortem_markdown
from ..filters import ActionItemFilter, PostmortemFilter, ReviewFilter
from ..ics import review_calendar
from ..models import (
    ActionItem,
    Postmortem,
    Review,
    ReviewStatus,
)
from . import serializers as s

ERRORS = COMMON_ERRORS
CONFLICT = {
    409: OpenApiResponse(
        description="Another author saved the same text first: `conflicts` holds their "
        "values, `current_version` the version to send after merging."
    )
}


class CommandsPostmortemIncident(BasePermission):
    """Commander group, or the Incident Commander of the postmortem's incident."""

    message = "Only a commander or this incident's Incident Commander may do this."

    def has_permission(self, request, view):
        return user_has_role(request.user, "responder")

    def has_object_permission(self, request, view, obj):
        return user_commands_incident(request.user, obj.incident)


def _postmortem(postmortem_id: int) -> Postmortem:
    try:
        return selectors.postmortem_get(postmortem_id=postmortem_id)
    except Postmortem.DoesNotExist:
        raise Http404("No such postmortem.") from None


def _detail(postmortem_id: int) -> dict:
    return s.PostmortemDetailOutputSerializer(_postmortem(postmortem_id)).data


class PostmortemListCreateApi(ListModelMixin, GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = s.PostmortemListOutputSerializer
    pagination_class = StandardPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = PostmortemFilter

    def get_queryset(self):
        return selectors.postmortem_list().prefetch_related("reviews")

    @extend_schema(
        tags=["postmortems"],
        summary="List postmortems",
        responses={200: s.PostmortemListOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        return self.list(request)

    @extend_schema(
        tags=["postmortems"],
        summary="Start a postmortem for a resolved incident",
        description="Drafts open by themselves on resolution for the configured severities; "
        "this starts one for the others (SEV4). Returns the existing one if there is one.",
        request=s.PostmortemCreateInputSerializer,
        responses={201: s.PostmortemDetailOutputSerializer, **ERRORS},
    )
    def post(self, request):
        data = s.PostmortemCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        postmortem = services.postmortem_create(
            incident_id=data.validated_data["incident"], actor=request.user
        )
        return created(_detail(postmortem.pk), "postmortem-detail", postmortem_id=postmortem.pk)


class PostmortemDetailApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["postmortems"],
        summary="Get a postmortem",
        parameters=CONDITIONAL_GET_PARAMETERS,
        responses={200: s.PostmortemDetailOutputSerializer, **NOT_MODIFIED, **ERRORS},
    )
    def get(self, request, postmortem_id: int):
        return conditional_response(request, _detail(postmortem_id))

    @extend_schema(
        tags=["postmortems"],
        summary="Edit a postmortem",
        description="Send `version` (the one you read) and the fields you change. Changes to "
        "other fields made meanwhile are merged; the same field changed by someone else "
        "gives 409 with their text, and nothing is overwritten.",
        request=s.PostmortemUpdateInputSerializer,
        parameters=IF_MATCH_PARAMETERS,
        responses={200: s.PostmortemDetailOutputSerializer, **ERRORS, **CONFLICT, **PRECONDITION},
    )
    def patch(self, request, postmortem_id: int):
        _postmortem(postmortem_id)
        data = s.PostmortemUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        version = changes.pop("version")
        try:
            # If-Match (optional) is stricter than `version`: any change since the client's
            # read refuses the write (412) instead of being merged.
            guarded_write(
                request,
                lock=lambda: list(
                    Postmortem.objects.select_for_update()
                    .filter(pk=postmortem_id)
                    .values_list("pk")
                ),
                current=lambda: _detail(postmortem_id),
                write=lambda: services.postmortem_update(
                    postmortem_id=postmortem_id,
                    expected_version=version,
                    changes=changes,
                    actor=request.user,
                ),
            )
        except services.PostmortemConflict as exc:
            return Response(
                {
                    **error_body(str(exc), "conflict"),
                    "current_version": exc.current.version,
                    "conflicts": exc.conflicts,
                },
                status=status.HTTP_409_CONFLICT,
            )
        return conditional_response(request, _detail(postmortem_id))


class PostmortemMarkdownApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["postmortems"],
        summary="The postmortem as a Markdown document",
        responses={(200, "text/markdown"): OpenApiResponse(description="Markdown document")},
    )
    def get(self, request, postmortem_id: int):
        postmortem = _postmortem(postmortem_id)
        response = HttpResponse(
            postmortem_markdown(postmortem), content_type="text/markdown; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{markdown_filename(postmortem)}"'
        return response


class _PostmortemActionApi(APIView):
    permission_classes = [ReadViewerWriteResponder]
    needs_command = False

    def get_permissions(self):
        if self.needs_command:
            return [CommandsPostmortemIncident()]
        return super().get_permissions()

    def act(self, request, postmortem):
        raise NotImplementedError

    def post(self, request, postmortem_id: int):
        postmortem = _postmortem(postmortem_id)
        self.check_object_permissions(request, postmortem)
        self.act(request, postmortem)
        return Response(_detail(postmortem_id))


def _action_schema(summary: str, description: str = "", request=None):
    return extend_schema(
        tags=["postmortems"],
        summary=summary,
        description=description,
        request=request,
        responses={200: s.PostmortemDetailOutputSerializer, **ERRORS},
    )


class PostmortemSubmitApi(_PostmortemActionApi):
    @_action_schema("Submit a draft for review")
    def post(self, request, postmortem_id: int):
        return super().post(request, postmortem_id)

    def act(self, request, postmortem):
        services.postmortem_submit_for_review(postmortem_id=postmortem.pk, actor=request.user)


class PostmortemReturnToDraftApi(_PostmortemActionApi):
    @_action_schema("Return a postmortem in review to draft")
    def post(self, request, postmortem_id: int):
        return super().post(request, postmortem_id)

    def act(self, request, postmortem):
        services.postmortem_return_to_draft(postmortem_id=postmortem.pk, actor=request.user)


class PostmortemPublishApi(_PostmortemActionApi):
    needs_command = True

    @_action_schema(
        "Publish a postmortem",
        "Commanders or the incident's Incident Commander. Closes the incident. Before the "
        "review its severity requires is held, or with summary, impact or root cause empty, "
        'it answers 400 naming the concerns (field "override") unless `override` is true; the '
        "timeline records who overrode what.",
        request=s.PublishInputSerializer,
    )
    def post(self, request, postmortem_id: int):
        return super().post(request, postmortem_id)

    def act(self, request, postmortem):
        data = s.PublishInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.postmortem_publish(
            postmortem_id=postmortem.pk,
            actor=request.user,
            override=data.validated_data["override"],
        )


class PostmortemWaiveApi(_PostmortemActionApi):
    needs_command = True

    @_action_schema(
        "Waive a postmortem",
        "Commanders or the incident's Incident Commander. Closes the incident with the reason "
        "and cancels a scheduled review.",
        request=s.ReasonInputSerializer,
    )
    def post(self, request, postmortem_id: int):
        return super().post(request, postmortem_id)

    def act(self, request, postmortem):
        data = s.ReasonInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.postmortem_waive(
            postmortem_id=postmortem.pk, reason=data.validated_data["reason"], actor=request.user
        )


class ReviewProposalApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["reviews"],
        summary="Propose a review slot and list who would be invited",
        responses={200: s.ReviewProposalOutputSerializer, **ERRORS},
    )
    def get(self, request, postmortem_id: int):
        postmortem = _postmortem(postmortem_id)
        return Response(
            s.ReviewProposalOutputSerializer(
                {
                    "proposed_start": services.review_proposed_slot(postmortem),
                    "duration_minutes": settings.QUELL_REVIEW_DURATION_MINUTES,
                    "review_due_at": postmortem.review_due_at,
                    "invitees": services.review_invitees(postmortem),
                }
            ).data
        )


class ReviewScheduleApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["reviews"],
        summary="Schedule the review and send the invites",
        request=s.ReviewScheduleInputSerializer,
        responses={201: s.ReviewOutputSerializer, **ERRORS},
    )
    def post(self, request, postmortem_id: int):
        _postmortem(postmortem_id)
        data = s.ReviewScheduleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = services.review_schedule(
            postmortem_id=postmortem_id, actor=request.user, **data.validated_data
        )
        return created(s.ReviewOutputSerializer(review).data, "review-detail", review_id=review.pk)


def _review(review_id: int) -> Review:
    review = selectors.review_list().filter(pk=review_id).first()
    if review is None:
        raise Http404("No such review.")
    return review


class ReviewListApi(ListModelMixin, GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = s.ReviewOutputSerializer
    pagination_class = StandardPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ReviewFilter

    def get_queryset(self):
        return selectors.review_list()

    @extend_schema(
        tags=["reviews"],
        summary="List reviews",
        responses={200: s.ReviewOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        return self.list(request)


class ReviewDetailApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["reviews"], summary="Get a review", responses={200: s.ReviewOutputSerializer}
    )
    def get(self, request, review_id: int):
        return Response(s.ReviewOutputSerializer(_review(review_id)).data)


class ReviewRescheduleApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["reviews"],
        summary="Move a review (same UID, higher SEQUENCE; attendees get an update)",
        request=s.ReviewRescheduleInputSerializer,
        responses={200: s.ReviewOutputSerializer, **ERRORS},
    )
    def post(self, request, review_id: int):
        _review(review_id)
        data = s.ReviewRescheduleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = services.review_reschedule(
            review_id=review_id, actor=request.user, **data.validated_data
        )
        return Response(s.ReviewOutputSerializer(review).data)


class ReviewCancelApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["reviews"],
        summary="Cancel a review (attendees get METHOD:CANCEL)",
        request=s.ReviewCancelInputSerializer,
        responses={200: s.ReviewOutputSerializer, **ERRORS},
    )
    def post(self, request, review_id: int):
        _review(review_id)
        data = s.ReviewCancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = services.review_cancel(
            review_id=review_id, actor=request.user, reason=data.validated_data["reason"]
        )
        return Response(s.ReviewOutputSerializer(review).data)


class ReviewIcsApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["reviews"],
        summary="The review as an iCalendar file",
        responses={(200, "text/calendar"): OpenApiResponse(description="iCalendar document")},
    )
    def get(self, request, review_id: int):
        review = _review(review_id)
        method = "CANCEL" if review.status == ReviewStatus.CANCELLED else "REQUEST"
        response = HttpResponse(
            review_calendar(review, method=method), content_type="text/calendar; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="review-{review.pk}.ics"'
        return response


class ActionItemListCreateApi(ListModelMixin, GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = s.ActionItemOutputSerializer
    pagination_class = StandardPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ActionItemFilter

    def get_queryset(self):
        return selectors.action_item_list()

    @extend_schema(
        tags=["action items"],
        summary="List action items",
        responses={200: s.ActionItemOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        return self.list(request)

    @extend_schema(
        tags=["action items"],
        summary="Add an action item to a postmortem",
        request=s.ActionItemCreateInputSerializer,
        responses={201: s.ActionItemOutputSerializer, **ERRORS},
    )
    def post(self, request):
        data = s.ActionItemCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        postmortem_id = values.pop("postmortem")
        if not Postmortem.objects.filter(pk=postmortem_id).exists():
            raise serializers.ValidationError({"postmortem": ["No such postmortem."]})
        item = services.action_item_create(
            postmortem_id=postmortem_id, actor=request.user, **values
        )
        return created(
            s.ActionItemOutputSerializer(item).data, "action-item-detail", action_item_id=item.pk
        )


def _item(action_item_id: int) -> ActionItem:
    item = selectors.action_item_list().filter(pk=action_item_id).first()
    if item is None:
        raise Http404("No such action item.")
    return item


class ActionItemDetailApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["action items"],
        summary="Get an action item",
        responses={200: s.ActionItemOutputSerializer, **ERRORS},
    )
    def get(self, request, action_item_id: int):
        return Response(s.ActionItemOutputSerializer(_item(action_item_id)).data)

    @extend_schema(
        tags=["action items"],
        summary="Edit an action item",
        description="`status: done` on an item tied to a check starts the check; the item is "
        "done only if it passes (see verification_status).",
        request=s.ActionItemUpdateInputSerializer,
        responses={200: s.ActionItemOutputSerializer, **ERRORS},
    )
    def patch(self, request, action_item_id: int):
        _item(action_item_id)
        data = s.ActionItemUpdateInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.action_item_update(
            action_item_id=action_item_id, actor=request.user, **data.validated_data
        )
        return Response(s.ActionItemOutputSerializer(_item(action_item_id)).data)


class ActionItemCompleteApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["action items"],
        summary="Mark an action item done",
        description="Done at once (200), or, when the item is tied to a diagnostic check, the "
        "check starts (202) and the item closes only if it passes.",
        request=None,
        responses={200: s.ActionItemOutputSerializer, 202: s.ActionItemOutputSerializer, **ERRORS},
    )
    def post(self, request, action_item_id: int):
        _item(action_item_id)
        item = services.action_item_complete(action_item_id=action_item_id, actor=request.user)
        code = status.HTTP_202_ACCEPTED if item.is_verifying else status.HTTP_200_OK
        return Response(s.ActionItemOutputSerializer(_item(action_item_id)).data, status=code)
