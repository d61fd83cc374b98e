"""Every write in comms, by subject: templates, updates (drafts and publishing), deliveries,
reminders, channels and components, subscribers. Import from here: `comms.services.X`.

Publishing never talks to a receiver: it records the update, its timeline event and one
Delivery row per destination in one transaction, and enqueues the sends after commit. Sending
happens in Celery (`comms.tasks.delivery_send`), one attempt per task run.
"""

from .common import PUBLIC_STATUSES, CommsError, UnfilledMarkers
from .configuration import (
    CHANNEL_FIELDS,
    channel_save,
    channel_test_send,
    channel_validate,
    component_delete,
    component_save,
    component_set_state,
)
from .deliveries import (
    AttemptOutcome,
    backoff_seconds,
    deliveries_resume,
    delivery_attempt,
    delivery_retry,
)
from .reminders import reminders_send_due
from .subscribers import (
    CONFIRM_MAX_AGE,
    CONFIRM_SALT,
    UNSUBSCRIBE_SALT,
    _load_token,
    subscriber_confirm,
    subscriber_confirm_check,
    subscriber_delete,
    subscriber_subscribe,
    subscriber_unsubscribe,
    subscriber_unsubscribe_check,
    unsubscribe_url,
)
from .templates import TEMPLATE_FIELDS, template_save, templates_install_defaults
from .updates import (
    Preview,
    can_publish,
    component_states_propose,
    initial_notification_send,
    update_create,
    update_create_and_publish,
    update_discard,
    update_edit,
    update_edit_and_publish,
    update_preview,
    update_publish,
    update_render,
)

__all__ = [
    "CHANNEL_FIELDS",
    "CONFIRM_MAX_AGE",
    "CONFIRM_SALT",
    "PUBLIC_STATUSES",
    "TEMPLATE_FIELDS",
    "UNSUBSCRIBE_SALT",
    "AttemptOutcome",
    "CommsError",
    "Preview",
    "UnfilledMarkers",
    "_load_token",
    "backoff_seconds",
    "can_publish",
    "channel_save",
    "channel_test_send",
    "channel_validate",
    "component_delete",
    "component_save",
    "component_set_state",
    "component_states_propose",
    "deliveries_resume",
    "delivery_attempt",
    "delivery_retry",
    "initial_notification_send",
    "reminders_send_due",
    "subscriber_confirm",
    "subscriber_confirm_check",
    "subscriber_delete",
    "subscriber_subscribe",
    "subscriber_unsubscribe",
    "subscriber_unsubscribe_check",
    "template_save",
    "templates_install_defaults",
    "unsubscribe_url",
    "update_create",
    "update_create_and_publish",
    "update_discard",
    "update_edit",
    "update_edit_and_publish",
    "update_preview",
    "update_publish",
    "update_render",
]
