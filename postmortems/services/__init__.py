"""Every write to postmortems, action items and reviews.

Each service runs in one transaction, locks the row it changes, and records what matters on the
incident's timeline (through postmortems.events, one function per kind of event) in that same
transaction.
"""

from .action_items import (
    action_item_complete,
    action_item_create,
    action_item_recheck_if_due,
    action_item_remind_overdue,
    action_item_settle_verification,
    action_item_update,
)
from .errors import PostmortemConflict, PostmortemError
from .postmortems import (
    postmortem_create,
    postmortem_flag_missed_deadline,
    postmortem_publish,
    postmortem_recompute_deadline,
    postmortem_return_to_draft,
    postmortem_submit_for_review,
    postmortem_update,
    postmortem_waive,
)
from .reviews import (
    review_cancel,
    review_invitees,
    review_left_out,
    review_mark_held,
    review_proposed_slot,
    review_reschedule,
    review_schedule,
    review_send_reminder,
)

__all__ = [
    "PostmortemConflict",
    "PostmortemError",
    "action_item_complete",
    "action_item_create",
    "action_item_recheck_if_due",
    "action_item_remind_overdue",
    "action_item_settle_verification",
    "action_item_update",
    "postmortem_create",
    "postmortem_flag_missed_deadline",
    "postmortem_publish",
    "postmortem_recompute_deadline",
    "postmortem_return_to_draft",
    "postmortem_submit_for_review",
    "postmortem_update",
    "postmortem_waive",
    "review_cancel",
    "review_invitees",
    "review_left_out",
    "review_mark_held",
    "review_proposed_slot",
    "review_reschedule",
    "review_schedule",
    "review_send_reminder",
]
