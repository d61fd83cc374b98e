"""Message templates: admins edit them; sent updates keep their own text."""

from __future__ import annotations

import logging

from django.db import transaction

from .. import rendering
from ..models import (
    Audience,
    MessageTemplate,
)
from .common import (
    PUBLIC_STATUSES,
    CommsError,
)

logger = logging.getLogger(__name__)


TEMPLATE_FIELDS = ("key", "name", "audience", "announces_status", "subject", "body", "active")


@transaction.atomic
def template_save(*, actor, template_id: int | None = None, **fields) -> MessageTemplate:
    """Create or edit a message template; sent updates keep their own text."""
    unknown = set(fields) - set(TEMPLATE_FIELDS) - {"position"}
    if unknown:
        raise CommsError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if template_id is None:
        template = MessageTemplate()
    else:
        template = MessageTemplate.objects.select_for_update().filter(pk=template_id).first()
        if template is None:
            raise CommsError(f"Template {template_id} does not exist.", field="template")
    for name, value in fields.items():
        setattr(template, name, value)
    if template.audience not in Audience.values:
        raise CommsError("Audience must be internal or external.", field="audience")
    if template.announces_status and template.announces_status not in PUBLIC_STATUSES:
        raise CommsError(
            "announces_status must be investigating, identified, monitoring or resolved.",
            field="announces_status",
        )
    if not (template.key or "").strip():
        raise CommsError("A key is required.", field="key")
    if not (template.subject or "").strip():
        raise CommsError("A subject is required.", field="subject")
    if not (template.body or "").strip():
        raise CommsError("A body is required.", field="body")
    for name in ("subject", "body"):
        try:
            rendering.validate_template_source(getattr(template, name))
        except rendering.TemplateError as exc:
            raise CommsError(str(exc), field=name) from None
    if MessageTemplate.objects.filter(key=template.key).exclude(pk=template.pk).exists():
        raise CommsError(f"A template with key '{template.key}' exists.", field="key")
    template.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    template.save()
    return template


def templates_install_defaults(*, overwrite: bool = False) -> int:
    """Create the playbook's default templates that are missing (or reset them). Returns count."""
    count = 0
    for d in rendering.DEFAULT_TEMPLATES:
        existing = MessageTemplate.objects.filter(key=d.key).first()
        if existing is not None and not overwrite:
            continue
        obj = existing or MessageTemplate(key=d.key)
        obj.name, obj.audience, obj.announces_status = d.name, d.audience, d.announces_status
        obj.subject, obj.body, obj.position = d.subject, d.body, d.position
        obj.is_default, obj.active = True, True
        obj.save()
        count += 1
    return count
