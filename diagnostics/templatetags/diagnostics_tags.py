"""Filters and tags for showing findings rows (lists of dicts) as tables people read."""

from urllib.parse import urlencode

from django import template
from django.urls import reverse

from diagnostics import findings_display, query_texts

register = template.Library()


@register.filter
def get_item(row, key):
    """row[key] for a dict row (templates cannot index with a variable)."""
    if isinstance(row, dict):
        return row.get(key)
    return None


@register.simple_tag(takes_context=True)
def finding_cell(context, row, key):
    """row[key] as text with its unit, as the signed-in user may read it (query texts:
    responders and up)."""
    value = get_item(row, key)
    if value and query_texts.is_query_key(key):
        request = context.get("request")
        if not query_texts.may_read(getattr(request, "user", None)):
            return query_texts.HIDDEN
    return findings_display.cell(key, value)


@register.filter
def finding_columns(rows):
    """Column keys over a list of dict rows, in first-seen order (empty columns left out)."""
    return findings_display.columns(rows)


@register.filter
def finding_label(key):
    """A column key as its label (`xact_age_s` -> "Transaction open")."""
    return findings_display.label(str(key))


@register.filter
def is_query_column(key):
    return query_texts.is_query_key(key)


@register.filter
def fixable(check_key):
    """Whether findings of this check offer remediation (root blockers, long queries, ...)."""
    return check_key in findings_display.FIXABLE


@register.simple_tag
def finding_fixes(check_key, row, incident_id, target_id):
    """The row's fix offers, each with the address that opens the remediation preview on the
    incident page, prefilled with the session's pid and backend_start."""
    if not incident_id or not target_id:
        return []
    offers = findings_display.fix_offers(check_key, row)
    for offer in offers:
        params = {
            "remediate": offer["kind"],
            "target": target_id,
            "pid": row["pid"],
            "backend_start": row.get("backend_start") or "",
            "finding": check_key,
        }
        if check_key == "blocking_locks":
            params["root_of"] = row.get("blocking_count") or 0
        offer["url"] = (
            reverse("incidents:detail", args=[incident_id])
            + "?"
            + urlencode(params)
            + f"#remediation-panel-{incident_id}"
        )
    return offers


@register.simple_tag
def blocking_tree(findings):
    """The blocking chains of a blocking_locks result, as trees (roots first)."""
    return findings_display.blocking_tree(findings)


@register.filter
def subtract(value, arg):
    """value - arg for integers (remaining rows)."""
    try:
        return int(value) - int(arg)
    except (TypeError, ValueError):
        return ""


@register.simple_tag(takes_context=True)
def changed_table(context, pairs):
    """Rows in both runs whose values changed, cell by cell (before shown where different),
    query texts as the signed-in user may read them."""
    request = context.get("request")
    return findings_display.changed_table(
        query_texts.for_user(pairs, getattr(request, "user", None))
    )


@register.filter
def metric_label(name):
    return findings_display.metric_label(str(name))


@register.simple_tag
def metric_value(name, value):
    return findings_display.metric_value(str(name), value)


@register.simple_tag
def fixable_rows(check_key, findings, limit=3):
    """The first rows of a result that offer a fix (sessions past the threshold), for the
    short list under "What matters"."""
    rows = [r for r in findings or [] if findings_display.fix_offers(check_key, r)]
    return rows[: int(limit)]
