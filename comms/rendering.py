"""Rendering message templates from what Quell knows about an incident.

Templates use Django's template language (plain text, no autoescaping, no custom tags). Every
variable is a string; whatever Quell cannot know renders as a visible marker such as
"[TO FILL: estimated resolution]" so the author sees what to write before sending. External
updates with a marker left are refused at publish time (`unfilled_markers`).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.template import Context, Engine, TemplateSyntaxError
from django.utils import timezone

from incidents.models import Incident, Status
from incidents.severity import severity_definition

MARKER_RE = re.compile(r"\[TO FILL:[^\]]*\]")

# A dedicated engine: plain text out (no HTML escaping), no template loaders, no app tags, so
# an admin-edited template can only read the variables it is given.
_ENGINE = Engine(autoescape=False, libraries={}, loaders=[], string_if_invalid="")

# Name -> what it holds. Shown to template authors in the admin and the API.
VARIABLES: dict[str, str] = {
    "title": "Incident title",
    "incident_id": "Incident number",
    "incident_url": "Link to the incident in Quell",
    "severity": "Severity (SEV1-SEV4)",
    "severity_definition": "The playbook's definition of that severity",
    "kind": "Kind of incident (availability, performance, data integrity, other)",
    "status": "Current status (Investigating, Identified, Monitoring, Resolved)",
    "time": "Time of this message",
    "detected_at": "When the issue was detected",
    "detected_by": "Who or what detected it",
    "declared_at": "When the incident was declared",
    "elapsed": "Time since the incident started",
    "description": "Description of the issue",
    "users_affected": "Percentage of users affected",
    "functionality_impacted": "Functionality affected",
    "affected_functionality": "Functionality affected, or 'our application' (for the public)",
    "business_impact": "Business impact",
    "scope": "Queries or tables involved",
    "confirmed": "Whether the issue is confirmed and reproducible",
    "response_team": "Roles and who holds them",
    "current_status": "Status summary lines",
    "diagnostics": "The latest diagnostics as sentences, worst check first",
    "actions_taken": "Actions taken: remediations, runbook steps done, status changes",
    "next_steps": "Planned actions",
    "estimated_resolution": "Estimated resolution time",
    "next_update": "Time of the next update (from the severity's cadence)",
    "restore_within": "Time to restore service, for the public (always for the author to fill)",
    "resolved_at": "When the incident was resolved",
    "total_duration": "Duration from detection to resolution",
    "resolution": "How the issue was resolved",
    "root_cause": "Root cause: the postmortem's, or the reason given at identified",
    "data_integrity_status": "Data integrity verification status",
    "data_loss_statement": "'No data was lost during this incident.' when verified",
    "data_impact": "Data impact, from the postmortem when written",
    "known_data_issues": "Known data issues (for the author)",
    "data_recovery_actions": "Data recovery actions taken (for the author)",
    "review_scheduled": "When the post-incident review is scheduled",
    "channel": "Incident channel name",
    "bridge": "Video bridge link",
}


def marker(what: str) -> str:
    """A visible placeholder for something Quell does not know."""
    return f"[TO FILL: {what}]"


def unfilled_markers(*texts: str) -> list[str]:
    """Every "[TO FILL: ...]" marker left in the given texts, in order, without repeats."""
    found: list[str] = []
    for text in texts:
        for m in MARKER_RE.findall(text or ""):
            if m not in found:
                found.append(m)
    return found


class TemplateError(ValueError):
    """A template that does not compile or render."""


def validate_template_source(source: str) -> None:
    """Raise TemplateError when `source` is not a valid template."""
    try:
        _ENGINE.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"Template error: {exc}") from None


def render_source(source: str, context: dict[str, str]) -> str:
    """Render one template source against a context of strings."""
    try:
        text = _ENGINE.from_string(source).render(Context(context, autoescape=False))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"Template error: {exc}") from None
    # Trim trailing blanks on each line and runs of blank lines left by empty variables.
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out)


def fmt_time(value: datetime.datetime | None) -> str:
    """A timestamp as people read it: 2026-01-31 14:05 UTC (in the organisation's zone)."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def fmt_duration(delta: datetime.timedelta) -> str:
    """1d 2h 5m; minutes at least."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if days:
        parts.append(f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m")
    return " ".join(parts)


def _bullets(lines: list[str]) -> str:
    """Lines as a "- " list."""
    return "\n".join(f"- {line}" for line in lines)


@dataclass
class IncidentFacts:
    """What rendering reads besides the incident row (gathered by comms.selectors)."""

    actions: list[str] = field(default_factory=list)
    root_cause: str = ""
    resolution: str = ""
    integrity: str = ""
    integrity_ok: bool | None = None
    diagnostics: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    review_scheduled: str = ""
    data_impact: str = ""
    next_update_at: datetime.datetime | None = None
    has_cadence: bool = True


def build_context(
    incident: Incident, facts: IncidentFacts, *, now: datetime.datetime | None = None
) -> dict[str, str]:
    """The template variables for an incident; unknowns are markers."""
    now = now or timezone.now()
    start = incident.detected_at or incident.declared_at
    end = incident.resolved_at or now
    pct = incident.users_affected_percent
    users_affected = (
        f"{pct.normalize():f}% of users affected" if pct is not None else marker("% of users")
    )
    status_label = Status(incident.status).label
    if incident.status == Status.INVESTIGATING:
        current = ["Investigation in progress"]
    elif incident.status == Status.IDENTIFIED:
        current = ["Cause identified; fix in progress"]
    elif incident.status == Status.MONITORING:
        current = ["Fix applied; monitoring the results"]
    else:
        current = [f"{status_label}"]
    if facts.roles:
        current.append("Response team assembled: " + "; ".join(facts.roles))
    else:
        current.append("Response team: " + marker("who is responding"))
    if incident.confirmed:
        current.append("Issue confirmed by diagnostic queries")
    if facts.next_update_at is not None:
        next_update = fmt_time(facts.next_update_at)
    elif not facts.has_cadence:
        next_update = "As significant changes happen"
    else:
        next_update = marker("time of next update")
    if incident.confirmed:
        reproducible = {True: ", reproducible", False: ", not reproducible"}.get(
            incident.reproducible, ""
        )
        confirmed = f"Confirmed{reproducible}"
    else:
        confirmed = "Not yet confirmed"
    if facts.integrity_ok:
        data_loss = "No data was lost during this incident."
    else:
        data_loss = marker("data loss statement, or remove this line")
    base = settings.QUELL_BASE_URL.rstrip("/")
    return {
        "title": incident.title,
        "incident_id": str(incident.pk),
        "incident_url": f"{base}/incidents/{incident.pk}/",
        "severity": incident.severity,
        "severity_definition": severity_definition(incident.severity),
        "kind": incident.get_kind_display(),
        "status": status_label,
        "time": fmt_time(now),
        "detected_at": fmt_time(incident.detected_at),
        "detected_by": incident.detected_by or marker("who detected it"),
        "declared_at": fmt_time(incident.declared_at),
        "elapsed": fmt_duration(now - start),
        "description": incident.description.strip() or marker("brief description of the issue"),
        "users_affected": users_affected,
        "functionality_impacted": incident.functionality_impacted.strip()
        or marker("functionality affected"),
        "affected_functionality": incident.functionality_impacted.strip() or "our application",
        "business_impact": incident.business_impact.strip() or marker("business impact"),
        "scope": incident.scope.strip() or marker("queries or tables involved"),
        "confirmed": confirmed,
        "response_team": "; ".join(facts.roles) or marker("response team"),
        "current_status": _bullets(current),
        "diagnostics": _bullets(facts.diagnostics)
        if facts.diagnostics
        else "- " + marker("connection status, performance metrics, error rates"),
        "actions_taken": _bullets(facts.actions)
        if facts.actions
        else "- " + marker("actions taken"),
        "next_steps": "- " + marker("planned actions"),
        # Quell cannot know an ETA; the playbook's own blank says what to write.
        "estimated_resolution": marker('ETA if known, or "Under investigation"'),
        "next_update": next_update,
        "restore_within": marker("estimated time to restore service"),
        "resolved_at": fmt_time(incident.resolved_at) or marker("time resolved"),
        "total_duration": fmt_duration(end - start),
        "resolution": facts.resolution or marker("how the issue was resolved"),
        "root_cause": facts.root_cause or marker("root cause, if known"),
        "data_integrity_status": facts.integrity or marker("status of data integrity verification"),
        "data_loss_statement": data_loss,
        "data_impact": facts.data_impact or marker("data impact, if any"),
        "known_data_issues": marker("any known data issues, or 'none'"),
        "data_recovery_actions": marker("data recovery actions taken, or 'none'"),
        "review_scheduled": facts.review_scheduled or marker("review date"),
        "channel": incident.channel_name,
        "bridge": incident.bridge_url or "none",
    }


@dataclass(frozen=True)
class DefaultTemplate:
    key: str
    name: str
    audience: str
    announces_status: str
    subject: str
    body: str
    position: int


# The playbook's "Communication Templates", with its bracketed blanks filled from the incident.
DEFAULT_TEMPLATES: tuple[DefaultTemplate, ...] = (
    DefaultTemplate(
        key="internal-initial",
        name="Initial notification",
        audience="internal",
        announces_status="",
        subject="INCIDENT DECLARED: {{ title }}",
        position=10,
        body="""@channel INCIDENT DECLARED: {{ title }}

Severity: {{ severity }} ({{ severity_definition }})
Time Detected: {{ detected_at }}
Detected By: {{ detected_by }}

Description:
{{ description }}

Impact:
- {{ users_affected }}
- {{ functionality_impacted }}
- {{ business_impact }}

Current Status:
{{ current_status }}

Next Update:
{{ next_update }}

Incident Channel: {{ channel }}
Bridge: {{ bridge }}
Incident: {{ incident_url }}""",
    ),
    DefaultTemplate(
        key="internal-update",
        name="Status update",
        audience="internal",
        announces_status="",
        subject="INCIDENT UPDATE: {{ title }}",
        position=20,
        body="""@channel INCIDENT UPDATE: {{ title }}

Time: {{ time }}
Elapsed Time: {{ elapsed }}
Severity: {{ severity }}
Status: {{ status }}

Current Status:
{{ current_status }}

Diagnostic Information:
{{ diagnostics }}

Actions Taken:
{{ actions_taken }}

Next Steps:
{{ next_steps }}

Estimated Resolution Time:
{{ estimated_resolution }}

Next Update:
{{ next_update }}

Incident Channel: {{ channel }}
Bridge: {{ bridge }}""",
    ),
    DefaultTemplate(
        key="internal-resolution",
        name="Resolution notification",
        audience="internal",
        announces_status="resolved",
        subject="INCIDENT RESOLVED: {{ title }}",
        position=30,
        body="""@channel INCIDENT RESOLVED: {{ title }}

Time Resolved: {{ resolved_at }}
Total Duration: {{ total_duration }}

Resolution:
{{ resolution }}

Root Cause:
{{ root_cause }}

Impact Summary:
- {{ users_affected }}
- Duration of impact: {{ total_duration }}
- {{ business_impact }}
- Data impact: {{ data_impact }}

Data Integrity Status:
- {{ data_integrity_status }}
- Known data issues: {{ known_data_issues }}
- Data recovery actions: {{ data_recovery_actions }}

Actions Taken:
{{ actions_taken }}

Follow-up:
- Post-incident review scheduled for {{ review_scheduled }}

Thank you to everyone who helped resolve this incident.""",
    ),
    DefaultTemplate(
        key="external-investigating",
        name="Status page: Investigating",
        audience="external",
        announces_status="investigating",
        subject="Database Issue",
        position=40,
        body="""We are currently experiencing an issue with our database that may affect \
{{ affected_functionality }}. Our team is investigating the issue and working to restore \
service as quickly as possible.

We will provide updates as more information becomes available.""",
    ),
    DefaultTemplate(
        key="external-identified",
        name="Status page: Identified",
        audience="external",
        announces_status="identified",
        subject="Database Issue",
        position=50,
        body="""We have identified the cause of the current database issue and are implementing \
a fix. We expect to restore service within {{ restore_within }}.

We apologize for the inconvenience and appreciate your patience.""",
    ),
    DefaultTemplate(
        key="external-monitoring",
        name="Status page: Monitoring",
        audience="external",
        announces_status="monitoring",
        subject="Database Issue",
        position=60,
        body="""A fix for the database issue affecting {{ affected_functionality }} has been \
applied and we are monitoring the results.

We will post another update by {{ next_update }}.""",
    ),
    DefaultTemplate(
        key="external-resolved",
        name="Status page: Resolved",
        audience="external",
        announces_status="resolved",
        subject="Database Issue",
        position=70,
        body="""The database issue affecting {{ affected_functionality }} has been resolved. All \
systems are now operating normally.

{{ data_loss_statement }}

We apologize for any inconvenience this may have caused.""",
    ),
)
