"""/api/v1/alerts/: the Alertmanager webhook and the generic JSON webhook.

Who may send: a responder-level user's API token (`Authorization: Token <key>`), or the shared
secret QUELL_ALERT_WEBHOOK_TOKEN as `Authorization: Bearer <secret>` or as an HMAC-SHA256 of
a timestamped body (`X-Quell-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, refused
outside QUELL_ALERT_SIGNATURE_TOLERANCE_S). Anything else is 401; a lesser role 403. At most
QUELL_ALERTS_MAX_PER_PAYLOAD alerts a payload (more: 413).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from django.conf import settings
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication, get_authorization_header
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from config.accounts.authentication import QuellTokenAuthentication
from config.accounts.throttles import AlertIngestThrottle
from config.kernel.api import error_body, field_errors, invalid_detail
from config.kernel.openapi import errors
from config.kernel.pagination import StandardPagination
from config.kernel.permissions import RESPONDER, IsViewer, user_has_role
from diagnostics.detection import selectors
from diagnostics.detection.models import Alert
from diagnostics.detection.payloads import (
    AlertmanagerPayloadSerializer,
    GenericAlertSerializer,
    alertmanager_deliveries,
    generic_signal,
)
from diagnostics.detection.services import signal_ingest, signals_ingest
from incidents.selectors import incident_exists

logger = logging.getLogger(__name__)
TAGS = ["alerts"]
# How much of a refused body the log keeps (the body is never lost silently, nor unbounded).
RAW_LOG_LIMIT = 64 * 1024


class WebhookSender:
    """The principal of a request authenticated by the shared webhook secret (no user)."""

    is_authenticated = True
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None
    id = None
    _quell_level = 0
    username = "alert-webhook"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class WebhookSecretAuthentication:
    """`Authorization: Bearer <QUELL_ALERT_WEBHOOK_TOKEN>` or a timestamped `X-Quell-Signature`;
    anything else is left to the token and session classes."""

    def authenticate(self, request):
        header = get_authorization_header(request).decode("latin-1")
        signature = request.META.get("HTTP_X_QUELL_SIGNATURE", "")
        is_bearer = header[:7].lower() == "bearer "
        if not is_bearer and not signature:
            return None
        secret = settings.QUELL_ALERT_WEBHOOK_TOKEN
        if not secret:
            raise exceptions.AuthenticationFailed(
                "Webhook secret authentication is not configured (QUELL_ALERT_WEBHOOK_TOKEN); "
                "use a responder's API token."
            )
        if is_bearer:
            if hmac.compare_digest(header[7:].strip().encode(), secret.encode()):
                return (WebhookSender(), "webhook-secret")
            raise exceptions.AuthenticationFailed("Invalid webhook token.")
        if self._signature_valid(secret, request.body, signature):
            return (WebhookSender(), "webhook-signature")
        raise exceptions.AuthenticationFailed(
            "Invalid webhook signature: send X-Quell-Signature: t=<unix time>,v1=<hex HMAC-SHA256 "
            "of '<t>.<body>'>, with t within "
            f"{settings.QUELL_ALERT_SIGNATURE_TOLERANCE_S} s of Quell's clock."
        )

    @staticmethod
    def _signature_valid(secret: str, body: bytes, header: str) -> bool:
        """`t=<unix>,v1=<hex of HMAC-SHA256 over "t.body">`, t within the tolerance.

        The timestamp is inside the signed text, so a captured request cannot be replayed once
        it is older than the tolerance. The former bare `sha256=<hex of the body>` form had no
        such limit and is refused.
        """
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            parts.setdefault(name.strip(), []).append(value.strip())
        try:
            sent = int(parts.get("t", [""])[0])
        except ValueError:
            return False
        if abs(time.time() - sent) > settings.QUELL_ALERT_SIGNATURE_TOLERANCE_S:
            return False
        expected = hmac.new(
            secret.encode(), str(sent).encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        return any(
            hmac.compare_digest(given.lower().encode(), expected.encode())
            for given in parts.get("v1", [])
        )

    def authenticate_header(self, request):
        return 'Bearer realm="quell-alerts"'


class WebhookSecretScheme(OpenApiAuthenticationExtension):
    """The webhook secret in the OpenAPI schema (bearer; the HMAC header is documented)."""

    target_class = "diagnostics.detection.api.views.WebhookSecretAuthentication"
    name = "alertWebhookSecret"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "QUELL_ALERT_WEBHOOK_TOKEN as a bearer token, or X-Quell-Signature: "
                "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>' keyed with it>."
            ),
        }


class SendsAlerts(BasePermission):
    """The webhook secret, or a user with the responder role or higher."""

    message = "Sending alerts needs the responder role (or the webhook secret)."

    def has_permission(self, request, view):
        if isinstance(request.user, WebhookSender):
            return True
        return user_has_role(request.user, RESPONDER)


class OutcomeSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["declared", "appended", "repeated", "resolved", "ignored"]
    )
    fingerprint = serializers.CharField()
    incident_id = serializers.IntegerField(allow_null=True)
    target = serializers.CharField(allow_null=True)
    repeats = serializers.IntegerField()


class IngestResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    alerts = OutcomeSerializer(many=True)


ERRORS = errors(
    400,
    401,
    403,
    413,
    e400="Invalid payload: field names to lists of messages.",
    e401="No or invalid credentials.",
    e403="Your role does not allow sending alerts.",
    e413="More alerts in one payload than accepted.",
)


class _AlertApi(APIView):
    authentication_classes = [
        WebhookSecretAuthentication,
        QuellTokenAuthentication,
        SessionAuthentication,
    ]
    permission_classes = [SendsAlerts]
    # Stricter than the API at large (scope "alerts", QUELL_THROTTLE_ALERTS).
    throttle_classes = [AlertIngestThrottle]

    def _actor(self):
        return None if isinstance(self.request.user, WebhookSender) else self.request.user

    def _payload(self, request) -> tuple[dict | None, Response | None]:
        """The JSON object sent, or the 400 answer refusing it."""
        # The raw bytes are read first so that a refusal can log them (Django refuses to give
        # the body once the parser has consumed the stream).
        self._raw = request.body
        try:
            data = request.data
        except exceptions.ParseError as exc:
            return None, self._refuse({"non_field_errors": [str(exc.detail)]})
        if not isinstance(data, dict):
            return None, self._refuse({"non_field_errors": ["Expected a JSON object."]})
        return data, None

    def _too_many(self, alerts) -> Response | None:
        """413 for a payload over the cap (Alertmanager's max_alerts keeps it under)."""
        limit = settings.QUELL_ALERTS_MAX_PER_PAYLOAD
        if isinstance(alerts, list) and len(alerts) > limit:
            logger.warning(
                "Alert payload refused at %s: %d alerts, more than %d",
                self.request.path,
                len(alerts),
                limit,
            )
            return Response(
                error_body(
                    f"{len(alerts)} alerts in one payload; at most {limit} are accepted (set "
                    "max_alerts in Alertmanager's webhook_config).",
                    "payload_too_large",
                ),
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        return None

    def _refuse(self, errors) -> Response:
        # Nothing is lost: the refused body is in the log with the reasons.
        body = self._raw[:RAW_LOG_LIMIT].decode("utf-8", errors="replace")
        logger.warning("Alert payload refused at %s: %s; body: %s", self.request.path, errors, body)
        fields = field_errors(errors)
        return Response(
            error_body(invalid_detail(fields), "invalid", fields),
            status=status.HTTP_400_BAD_REQUEST,
        )


class AlertmanagerWebhookApi(_AlertApi):
    """Prometheus Alertmanager's webhook receiver (payload version 4)."""

    @extend_schema(
        tags=TAGS,
        request=OpenApiTypes.OBJECT,
        responses={200: IngestResultSerializer, **ERRORS},
        summary="Alertmanager webhook",
    )
    def post(self, request):
        data, refusal = self._payload(request)
        if refusal is not None:
            return refusal
        too_many = self._too_many(data.get("alerts"))
        if too_many is not None:
            return too_many
        serializer = AlertmanagerPayloadSerializer(data=data)
        if not serializer.is_valid():
            return self._refuse(serializer.errors)
        raw_alerts = data.get("alerts") or []
        deliveries = alertmanager_deliveries(serializer.validated_data, raw_alerts)
        outcomes = [
            outcome.as_dict()
            for delivery in deliveries
            for outcome in signals_ingest(delivery=delivery, actor=self._actor())
        ]
        return Response({"received": len(outcomes), "alerts": outcomes})


class GenericWebhookApi(_AlertApi):
    """Quell's generic JSON alert (docs/detection.md has the schema)."""

    @extend_schema(
        tags=TAGS,
        request=GenericAlertSerializer,
        responses={200: IngestResultSerializer, **ERRORS},
        summary="Generic alert webhook",
    )
    def post(self, request):
        data, refusal = self._payload(request)
        if refusal is not None:
            return refusal
        serializer = GenericAlertSerializer(data=data)
        if not serializer.is_valid():
            return self._refuse(serializer.errors)
        signal = generic_signal(serializer.validated_data, dict(data))
        outcome = signal_ingest(signal=signal, actor=self._actor())
        return Response({"received": 1, "alerts": [outcome.as_dict()]})


class AlertOutputSerializer(serializers.ModelSerializer):
    target = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "fingerprint",
            "source",
            "name",
            "title",
            "severity",
            "kind",
            "status",
            "target",
            "target_hint",
            "url",
            "first_seen_at",
            "last_seen_at",
            "deliveries",
            "repeats",
        ]
        read_only_fields = fields


class IncidentAlertsApi(GenericAPIView):
    """The alerts and monitor breaches an incident received, one row per alert."""

    permission_classes = [IsViewer]
    serializer_class = AlertOutputSerializer
    pagination_class = StandardPagination
    queryset = Alert.objects.none()

    @extend_schema(
        tags=TAGS,
        operation_id="incident_alerts_list",
        summary="An incident's alerts (firing first, then the latest seen)",
        responses={200: AlertOutputSerializer(many=True), **errors(401, 403, 404)},
    )
    def get(self, request, incident_id: int):
        if not incident_exists(incident_id=incident_id):
            raise Http404("No such incident.")
        page = self.paginate_queryset(selectors.incident_alert_list(incident_id=incident_id))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
