"""REST endpoints for triage: the tree, an incident's walk (start, answer, back, apply) and the
suggested answers. Thin views over incidents.triage.services and selectors; permissions from
incidents.permissions (viewers read, responders walk, commanders or the IC apply severity)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from config.kernel.fields import AbsoluteUrlField
from config.kernel.headers import location
from config.kernel.openapi import errors
from config.kernel.pagination import StandardPagination, paginated
from config.kernel.permissions import IsViewer, ReadViewerWriteResponder
from incidents import selectors as incident_selectors
from incidents.api.serializers import UserRefSerializer
from incidents.models import Incident, Kind
from incidents.permissions import user_commands_incident
from incidents.severity import Severity

from . import selectors, services
from .models import (
    ACTION_CHOICES,
    SUGGESTION_CHOICES,
    NodeKind,
    TreeStatus,
    TriageTree,
    WalkStatus,
)

TAGS = ["triage"]


ERRORS = errors(
    e400="Invalid input: field names to lists of messages, plus `detail` and `code` "
    "for a rule the walk's state refuses.",
    e404="No such incident or tree version.",
)
CONFLICT = errors(
    409, e409="The walk moved on (somebody else answered): re-read it and answer again."
)


# --- Output -----------------------------------------------------------------------------


class AnswerOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    to = serializers.CharField(help_text="Key of the node this answer leads to.")


class NextStepOutputSerializer(serializers.Serializer):
    text = serializers.CharField()
    action = serializers.ChoiceField(choices=ACTION_CHOICES, allow_null=True)
    label = serializers.CharField(help_text="The action's name ('' without one).")
    check = serializers.CharField(help_text="The diagnostics check it is about, if any.")
    url = AbsoluteUrlField(help_text="Where to take the action in Quell ('' if unavailable).")
    run_url = AbsoluteUrlField(
        help_text="POST here to take the action (run diagnostics, or start the runbook named "
        "in `runbook` with runbook=<key>); '' when there is none."
    )
    runbook = serializers.CharField(help_text="Key of the runbook the action starts, if any.")
    panel = serializers.CharField(help_text="The incident page's panel the action lives in.")
    available = serializers.BooleanField()


class NodeOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    chart_ref = serializers.CharField()
    kind = serializers.ChoiceField(choices=NodeKind.choices)
    text = serializers.CharField()
    help = serializers.CharField()
    severity = serializers.ChoiceField(choices=Severity.choices, allow_null=True)
    incident_kind = serializers.ChoiceField(choices=Kind.choices, allow_null=True)
    answers = AnswerOutputSerializer(many=True)
    next_steps = NextStepOutputSerializer(many=True)


class TreeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.ChoiceField(choices=TreeStatus.choices)
    notes = serializers.CharField()
    published_at = serializers.DateTimeField(allow_null=True)
    root = serializers.CharField(allow_null=True, help_text="Key of the root node.")
    nodes = NodeOutputSerializer(many=True)


class SuggestionOutputSerializer(serializers.Serializer):
    answer = serializers.CharField(help_text="The suggested answer's key.")
    answer_label = serializers.CharField(required=False)
    evidence = serializers.CharField()
    run_url = AbsoluteUrlField()
    provider = serializers.CharField()


class PassedNodeSerializer(serializers.Serializer):
    key = serializers.CharField()
    chart_ref = serializers.CharField()
    kind = serializers.ChoiceField(choices=NodeKind.choices)
    text = serializers.CharField()
    severity = serializers.CharField(help_text="SEV1..SEV4 proposed from here, or ''.")
    kind_proposed = serializers.CharField(help_text="Incident kind proposed from here, or ''.")


class StepOutputSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    question = serializers.CharField(source="question_key")
    question_text = serializers.CharField()
    answer = serializers.CharField(source="answer_key")
    answer_label = serializers.CharField()
    answered_at = serializers.DateTimeField()
    answered_by = UserRefSerializer(allow_null=True)
    suggested_answer = serializers.CharField(allow_null=True)
    suggestion = serializers.ChoiceField(choices=SUGGESTION_CHOICES, allow_null=True)
    evidence = serializers.CharField()
    run_url = AbsoluteUrlField()
    passed = PassedNodeSerializer(many=True, help_text="Nodes the answer led through, in order.")
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    withdrawn_by = UserRefSerializer(allow_null=True)


class WalkOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    incident = serializers.IntegerField()
    tree_version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=WalkStatus.choices)
    started_at = serializers.DateTimeField()
    started_by = UserRefSerializer(allow_null=True)
    start_path = PassedNodeSerializer(many=True)
    question = NodeOutputSerializer(allow_null=True, help_text="What to answer next.")
    suggestion = SuggestionOutputSerializer(allow_null=True)
    steps = StepOutputSerializer(many=True, help_text="Answers in force, in order.")
    outcome = NodeOutputSerializer(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    proposed_severity = serializers.ChoiceField(choices=Severity.choices, allow_null=True)
    proposed_kind = serializers.ChoiceField(choices=Kind.choices, allow_null=True)
    severity_applied_at = serializers.DateTimeField(allow_null=True)
    severity_applied_by = UserRefSerializer(allow_null=True)
    kind_applied_at = serializers.DateTimeField(allow_null=True)
    kind_applied_by = UserRefSerializer(allow_null=True)
    can_back = serializers.BooleanField()
    can_apply_severity = serializers.BooleanField(
        help_text="Whether the requesting user may apply the proposed severity."
    )


class TriageOutputSerializer(serializers.Serializer):
    walk = WalkOutputSerializer(allow_null=True, help_text="The walk in use, or null.")
    suggestions = serializers.DictField(
        child=SuggestionOutputSerializer(), help_text="Suggested answers by question key."
    )


class SuggestionsOutputSerializer(serializers.Serializer):
    suggestions = serializers.DictField(
        child=SuggestionOutputSerializer(), help_text="Suggested answers by question key."
    )


class WalkHistorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    tree_version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=WalkStatus.choices)
    started_at = serializers.DateTimeField()
    started_by = UserRefSerializer(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    outcome_text = serializers.CharField()
    proposed_severity = serializers.ChoiceField(choices=Severity.choices, allow_null=True)
    steps = StepOutputSerializer(many=True, help_text="Every answer, withdrawn ones too.")


# --- Input ------------------------------------------------------------------------------


class StartInputSerializer(serializers.Serializer):
    restart = serializers.BooleanField(
        default=False,
        help_text="Abandon the walk in use (kept as history) and start again on the current "
        "tree version.",
    )


class AnswerInputSerializer(serializers.Serializer):
    question = serializers.SlugField(
        help_text="Key of the question answered (must be the walk's current question)."
    )
    answer = serializers.SlugField(help_text="Key of the chosen answer.")


class ApplyInputSerializer(serializers.Serializer):
    severity = serializers.BooleanField(
        default=True, help_text="Apply the proposed severity (commander or the IC)."
    )
    kind = serializers.BooleanField(default=True, help_text="Apply the proposed incident kind.")

    def validate(self, attrs):
        if not attrs["severity"] and not attrs["kind"]:
            raise serializers.ValidationError("Choose what to apply: severity, kind or both.")
        return attrs


# --- Payloads ---------------------------------------------------------------------------


def _user(user) -> dict | None:
    return None if user is None else {"id": user.pk, "username": user.get_username()}


def _node(node: dict | None) -> dict | None:
    if node is None:
        return None
    return {
        **node,
        "severity": node["severity"] or None,
        "incident_kind": node["incident_kind"] or None,
        "next_steps": [{**s, "action": s["action"] or None} for s in node["next_steps"]],
    }


def _step(step) -> dict:
    return {
        "position": step.position,
        "question_key": step.question_key,
        "question_text": step.question_text,
        "answer_key": step.answer_key,
        "answer_label": step.answer_label,
        "answered_at": step.answered_at,
        "answered_by": _user(step.answered_by),
        "suggested_answer": step.suggested_answer_key or None,
        "suggestion": step.suggestion or None,
        "evidence": step.suggestion_evidence,
        "run_url": step.suggestion_run_url,
        "passed": step.path,
        "withdrawn_at": step.withdrawn_at,
        "withdrawn_by": _user(step.withdrawn_by),
    }


def tree_payload(tree: TriageTree) -> dict:
    """A tree version as the API shows it."""
    root = selectors.tree_root(tree)
    nodes = [_node(selectors.node_out(n, incident_id=None)) for n in tree.nodes.all()]
    return {
        "id": tree.pk,
        "version": tree.version,
        "title": tree.title,
        "status": tree.status,
        "notes": tree.notes,
        "published_at": tree.published_at,
        "root": root.key if root else None,
        "nodes": nodes,
    }


def walk_payload(walk, *, suggestions: dict, user) -> dict:
    """A walk and where it stands, for `user`."""
    state = selectors.walk_state(walk, suggestions=suggestions)
    return {
        "id": walk.pk,
        "incident": walk.incident_id,
        "tree_version": walk.tree.version,
        "status": walk.status,
        "started_at": walk.started_at,
        "started_by": _user(walk.started_by),
        "start_path": state["start_path"],
        "question": _node(state["question"]),
        "suggestion": state["suggestion"],
        "steps": [_step(s) for s in state["steps"]],
        "outcome": _node(state["outcome"]),
        "completed_at": walk.completed_at,
        "proposed_severity": state["proposed_severity"] or None,
        "proposed_kind": state["proposed_kind"] or None,
        "severity_applied_at": walk.severity_applied_at,
        "severity_applied_by": _user(walk.severity_applied_by),
        "kind_applied_at": walk.kind_applied_at,
        "kind_applied_by": _user(walk.kind_applied_by),
        "can_back": state["can_back"],
        "can_apply_severity": user_commands_incident(user, walk.incident),
    }


def _incident(incident_id: int) -> Incident:
    try:
        return incident_selectors.incident_get(incident_id=incident_id)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None


def _triage_body(incident_id: int, user) -> dict:
    suggestions = selectors.suggestions_for(incident_id=incident_id)
    walk = selectors.walk_current(incident_id=incident_id)
    return {
        "walk": walk_payload(walk, suggestions=suggestions, user=user) if walk else None,
        "suggestions": suggestions,
    }


def _walk_body(incident_id: int, request) -> dict:
    body = _triage_body(incident_id, request.user)
    return TriageOutputSerializer(body, context={"request": request}).data


# --- Views ------------------------------------------------------------------------------


class TriageTreeCurrentApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="The current triage tree",
        description="The published version of the decision tree: its nodes (questions, steps, "
        "outcomes), answers and next steps.",
        responses={200: TreeOutputSerializer, **ERRORS},
    )
    def get(self, request):
        return Response(TreeOutputSerializer(tree_payload(services.tree_ensure_current())).data)


class TriageTreeVersionApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="One version of the triage tree",
        description="Any version, retired ones included (the one an old walk used).",
        responses={200: TreeOutputSerializer, **ERRORS},
    )
    def get(self, request, version: int):
        try:
            tree = selectors.tree_get(version=version)
        except TriageTree.DoesNotExist:
            raise Http404("No such tree version.") from None
        return Response(TreeOutputSerializer(tree_payload(tree)).data)


class IncidentTriageApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=TAGS,
        summary="An incident's triage: the walk in use and the suggested answers",
        responses={200: TriageOutputSerializer, **ERRORS},
    )
    def get(self, request, incident_id: int):
        _incident(incident_id)
        return Response(_walk_body(incident_id, request))

    @extend_schema(
        tags=TAGS,
        summary="Start triage (or restart it)",
        description="Starts a walk on the current tree version; with a walk in use it is "
        "returned (200) unless `restart` abandons it and starts again (201).",
        request=StartInputSerializer,
        responses={200: TriageOutputSerializer, 201: TriageOutputSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int):
        _incident(incident_id)
        data = StartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        before = selectors.walk_current(incident_id=incident_id)
        walk = services.triage_walk_start(
            incident_id=incident_id, actor=request.user, restart=data.validated_data["restart"]
        )
        created = before is None or before.pk != walk.pk
        return Response(
            _walk_body(incident_id, request),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers=location("incident-triage", incident_id=incident_id) if created else None,
        )


class IncidentTriageAnswerApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=TAGS,
        summary="Answer the current question",
        description="Records who answered and whether diagnostics suggested it (accepted or "
        "overridden). Reaching an outcome completes the walk and proposes severity and kind.",
        request=AnswerInputSerializer,
        responses={200: TriageOutputSerializer, **ERRORS, **CONFLICT},
    )
    def post(self, request, incident_id: int):
        _incident(incident_id)
        data = AnswerInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        question = data.validated_data["question"]
        suggestion = selectors.suggestions_for(incident_id=incident_id).get(question)
        services.triage_walk_answer(
            incident_id=incident_id,
            question=question,
            answer=data.validated_data["answer"],
            actor=request.user,
            suggestion=suggestion,
        )
        return Response(_walk_body(incident_id, request))


class IncidentTriageBackApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=TAGS,
        summary="Go back one answer",
        description="The last answer is withdrawn (kept in the history) and its question is "
        "asked again.",
        request=None,
        responses={200: TriageOutputSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int):
        _incident(incident_id)
        services.triage_walk_back(incident_id=incident_id, actor=request.user)
        return Response(_walk_body(incident_id, request))


class IncidentTriageApplyApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=TAGS,
        summary="Apply the outcome's proposed severity and kind",
        description="Severity changes need a commander or the incident's Incident Commander "
        "(send `severity: false` to apply only the kind); the re-grade's reason cites the "
        "triage.",
        request=ApplyInputSerializer,
        responses={200: TriageOutputSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int):
        incident = _incident(incident_id)
        data = ApplyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["severity"] and not user_commands_incident(request.user, incident):
            raise PermissionDenied(
                "Only a commander or this incident's Incident Commander may change severity; "
                'send {"severity": false} to apply only the kind.'
            )
        services.triage_outcome_apply(
            incident_id=incident_id,
            actor=request.user,
            severity=data.validated_data["severity"],
            kind=data.validated_data["kind"],
        )
        return Response(_walk_body(incident_id, request))


class IncidentTriageSuggestionsApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Answers suggested by the latest diagnostics",
        responses={200: SuggestionsOutputSerializer, **ERRORS},
    )
    def get(self, request, incident_id: int):
        _incident(incident_id)
        body = {"suggestions": selectors.suggestions_for(incident_id=incident_id)}
        return Response(SuggestionsOutputSerializer(body, context={"request": request}).data)


class IncidentTriageWalksApi(APIView):
    permission_classes = [IsViewer]
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        summary="Every triage walk on an incident (abandoned ones and withdrawn answers too)",
        responses={200: WalkHistorySerializer(many=True), **ERRORS},
    )
    def get(self, request, incident_id: int):
        _incident(incident_id)
        return paginated(
            request,
            self,
            selectors.walk_history(incident_id=incident_id),
            lambda page: (
                WalkHistorySerializer(
                    [_walk(w) for w in page], many=True, context={"request": request}
                ).data
            ),
        )


def _walk(w) -> dict:
    return {
        "id": w.pk,
        "tree_version": w.tree.version,
        "status": w.status,
        "started_at": w.started_at,
        "started_by": _user(w.started_by),
        "ended_at": w.ended_at,
        "outcome_text": w.outcome_text,
        "proposed_severity": w.proposed_severity or None,
        "steps": [_step(s) for s in w.steps.all()],
    }
