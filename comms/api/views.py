"""The comms REST API: one small view per operation; writes go through comms.services."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from config.accounts.idempotency import idempotent
from config.kernel.headers import created
from config.kernel.permissions import (
    IsAdmin,
    IsCommander,
    IsResponder,
    IsViewer,
    ReadViewerWriteAdmin,
)
from incidents.models import Incident

from .. import selectors, services
from ..filters import UpdateFilter
from ..models import Channel, Component, Delivery, MessageTemplate, StatusUpdate, Subscriber
from ..rendering import VARIABLES
from . import serializers as s

# --- Templates ------------------------------------------------------------------------------


class TemplateListCreate(generics.ListAPIView):
    """Message templates; admins create them."""

    permission_classes = [ReadViewerWriteAdmin]
    serializer_class = s.TemplateOut
    queryset = MessageTemplate.objects.all()
    filterset_fields = ["audience", "active", "is_default"]

    @extend_schema(request=s.TemplateIn, responses={201: s.TemplateOut})
    def post(self, request):
        data = s.TemplateIn(data=request.data)
        data.is_valid(raise_exception=True)
        template = services.template_save(actor=request.user, **data.validated_data)
        return created(s.TemplateOut(template).data, "comms-api:template", pk=template.pk)


class TemplateDetail(APIView):
    """One template; admins edit it (sent updates keep their text)."""

    permission_classes = [ReadViewerWriteAdmin]

    @extend_schema(responses=s.TemplateOut)
    def get(self, request, pk):
        return Response(s.TemplateOut(get_object_or_404(MessageTemplate, pk=pk)).data)

    @extend_schema(request=s.TemplateIn, responses=s.TemplateOut)
    def patch(self, request, pk):
        get_object_or_404(MessageTemplate, pk=pk)
        data = s.TemplateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        template = services.template_save(actor=request.user, template_id=pk, **data.validated_data)
        return Response(s.TemplateOut(template).data)

    put = patch


class TemplateVariables(APIView):
    """The variables templates may use, with what each holds."""

    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(VARIABLES)


# --- Updates --------------------------------------------------------------------------------


def _incident(pk) -> Incident:
    return get_object_or_404(Incident, pk=pk)


class IncidentUpdates(generics.ListAPIView):
    """An incident's updates (drafts and published); responders draft (and publish) new ones."""

    permission_classes = [IsViewer]
    serializer_class = s.UpdateOut
    filterset_class = UpdateFilter

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsResponder()]
        return super().get_permissions()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return StatusUpdate.objects.none()
        _incident(self.kwargs["incident_id"])
        return selectors.updates_for_incident(incident_id=self.kwargs["incident_id"])

    @extend_schema(request=s.UpdateCreateIn, responses={201: s.UpdateOut})
    @idempotent
    def post(self, request, incident_id):
        incident = _incident(incident_id)
        data = s.UpdateCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        publish = fields.pop("publish", False)
        fields["template_id"] = fields.pop("template", None)
        if publish:
            audience = fields.get("audience") or _template_audience(fields["template_id"])
            _check_publish(request.user, incident, audience)
            update = services.update_create_and_publish(
                incident_id=incident.pk, actor=request.user, **fields
            )
        else:
            update = services.update_create(incident_id=incident.pk, actor=request.user, **fields)
        return created(s.UpdateOut(update).data, "comms-api:update", pk=update.pk)


def _template_audience(template_id) -> str | None:
    return MessageTemplate.objects.filter(pk=template_id).values_list("audience", flat=True).first()


def _check_publish(user, incident, audience) -> None:
    if not services.can_publish(user, incident, audience):
        raise PermissionDenied(
            "External updates are published by a commander, or by this incident's Incident "
            "Commander or Communications Lead."
        )


class IncidentPreview(APIView):
    """Render a template for the incident (or check the author's text) without saving."""

    permission_classes = [IsResponder]

    @extend_schema(request=s.PreviewIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, incident_id):
        incident = _incident(incident_id)
        data = s.PreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields["template_id"] = fields.pop("template", None)
        preview = services.update_preview(incident_id=incident.pk, **fields)
        return Response(preview.as_dict())


class IncidentCommsStatus(APIView):
    """When the next update is due, whether it is overdue, and failed deliveries."""

    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, incident_id):
        incident = _incident(incident_id)
        due = selectors.incident_update_due(incident)
        failed = selectors.failed_deliveries(incident_id=incident.pk)
        return Response(
            {
                "incident": incident.pk,
                "update_due": due.as_dict(),
                "failed_deliveries": s.DeliveryOut(
                    failed[:50], many=True, context={"request": request}
                ).data,
            }
        )


class UpdateDetail(APIView):
    """One update; responders edit or discard drafts."""

    permission_classes = [IsViewer]

    def get_permissions(self):
        if self.request.method in ("PATCH", "PUT", "DELETE"):
            return [IsResponder()]
        return super().get_permissions()

    @extend_schema(responses=s.UpdateOut)
    def get(self, request, pk):
        return Response(s.UpdateOut(get_object_or_404(StatusUpdate, pk=pk)).data)

    @extend_schema(request=s.UpdateEditIn, responses=s.UpdateOut)
    def patch(self, request, pk):
        get_object_or_404(StatusUpdate, pk=pk)
        data = s.UpdateEditIn(data=request.data)
        data.is_valid(raise_exception=True)
        update = services.update_edit(update_id=pk, actor=request.user, **data.validated_data)
        return Response(s.UpdateOut(update).data)

    put = patch

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        get_object_or_404(StatusUpdate, pk=pk)
        services.update_discard(update_id=pk, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UpdatePublish(APIView):
    """Publish a draft: stored as sent, on the timeline, deliveries enqueued."""

    permission_classes = [IsResponder]

    @extend_schema(request=None, responses=s.UpdateOut)
    def post(self, request, pk):
        update = get_object_or_404(StatusUpdate.objects.select_related("incident"), pk=pk)
        _check_publish(request.user, update.incident, update.audience)
        update = services.update_publish(update_id=pk, actor=request.user)
        return Response(s.UpdateOut(update).data)


# --- Channels -------------------------------------------------------------------------------


class ChannelListCreate(generics.ListAPIView):
    """Notification channels (admins only: they hold secrets)."""

    permission_classes = [IsAdmin]
    serializer_class = s.ChannelOut
    queryset = Channel.objects.all()
    filterset_fields = ["kind", "audience", "enabled"]

    @extend_schema(request=s.ChannelIn, responses={201: s.ChannelOut})
    def post(self, request):
        data = s.ChannelIn(data=request.data)
        data.is_valid(raise_exception=True)
        channel = services.channel_save(actor=request.user, **data.validated_data)
        return created(s.ChannelOut(channel).data, "comms-api:channel", pk=channel.pk)


class ChannelDetail(APIView):
    """One channel; secrets can be replaced, never read."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=s.ChannelOut)
    def get(self, request, pk):
        return Response(s.ChannelOut(get_object_or_404(Channel, pk=pk)).data)

    @extend_schema(request=s.ChannelIn, responses=s.ChannelOut)
    def patch(self, request, pk):
        get_object_or_404(Channel, pk=pk)
        data = s.ChannelIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        channel = services.channel_save(actor=request.user, channel_id=pk, **data.validated_data)
        return Response(s.ChannelOut(channel).data)

    put = patch

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        get_object_or_404(Channel, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTest(APIView):
    """Send a test message through a channel; the delivery shows how it went."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={202: s.DeliveryOut})
    def post(self, request, pk):
        get_object_or_404(Channel, pk=pk)
        delivery = services.channel_test_send(channel_id=pk, actor=request.user)
        return Response(
            s.DeliveryOut(delivery, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


# --- Deliveries -----------------------------------------------------------------------------


class DeliveryList(generics.ListAPIView):
    """Deliveries, newest first; filter by incident, state, kind, channel."""

    permission_classes = [IsViewer]
    serializer_class = s.DeliveryOut
    queryset = Delivery.objects.select_related("channel")
    filterset_fields = ["incident", "state", "kind", "channel", "status_update", "transport"]


class DeliveryDetail(generics.RetrieveAPIView):
    permission_classes = [IsViewer]
    serializer_class = s.DeliveryOut
    queryset = Delivery.objects.select_related("channel")


class DeliveryRetry(APIView):
    """Send a failed delivery again."""

    permission_classes = [IsResponder]

    @extend_schema(request=None, responses=s.DeliveryOut)
    def post(self, request, pk):
        get_object_or_404(Delivery, pk=pk)
        delivery = services.delivery_retry(delivery_id=pk, actor=request.user)
        return Response(s.DeliveryOut(delivery, context={"request": request}).data)


# --- Components -----------------------------------------------------------------------------


class ComponentListCreate(generics.ListAPIView):
    """Status page components; admins define them."""

    permission_classes = [ReadViewerWriteAdmin]
    serializer_class = s.ComponentOut
    queryset = Component.objects.prefetch_related("targets")

    @extend_schema(request=s.ComponentIn, responses={201: s.ComponentOut})
    def post(self, request):
        data = s.ComponentIn(data=request.data)
        data.is_valid(raise_exception=True)
        comp = services.component_save(actor=request.user, **data.validated_data)
        return created(s.ComponentOut(comp).data, "comms-api:component", pk=comp.pk)


class ComponentDetail(APIView):
    permission_classes = [ReadViewerWriteAdmin]

    @extend_schema(responses=s.ComponentOut)
    def get(self, request, pk):
        return Response(s.ComponentOut(get_object_or_404(Component, pk=pk)).data)

    @extend_schema(request=s.ComponentIn, responses=s.ComponentOut)
    def patch(self, request, pk):
        get_object_or_404(Component, pk=pk)
        data = s.ComponentIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        comp = services.component_save(actor=request.user, component_id=pk, **data.validated_data)
        return Response(s.ComponentOut(comp).data)

    put = patch

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        get_object_or_404(Component, pk=pk)
        services.component_delete(component_id=pk, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ComponentSetState(APIView):
    """Set a component's state by hand (commanders)."""

    permission_classes = [IsCommander]

    @extend_schema(request=s.ComponentStateIn, responses=s.ComponentOut)
    def post(self, request, pk):
        get_object_or_404(Component, pk=pk)
        data = s.ComponentStateIn(data=request.data)
        data.is_valid(raise_exception=True)
        incident_id = data.validated_data.get("incident")
        if incident_id is not None:
            _incident(incident_id)
        comp = services.component_set_state(
            component_id=pk,
            state=data.validated_data["state"],
            actor=request.user,
            incident_id=incident_id,
        )
        return Response(s.ComponentOut(comp).data)


# --- Subscribers ----------------------------------------------------------------------------


class SubscriberList(generics.ListAPIView):
    """Status page subscribers (personal data: admins only)."""

    permission_classes = [IsAdmin]
    serializer_class = s.SubscriberOut
    queryset = Subscriber.objects.all()
    search_fields = ["email"]


class SubscriberDetail(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=s.SubscriberOut)
    def get(self, request, pk):
        return Response(s.SubscriberOut(get_object_or_404(Subscriber, pk=pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        get_object_or_404(Subscriber, pk=pk)
        services.subscriber_delete(subscriber_id=pk, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
