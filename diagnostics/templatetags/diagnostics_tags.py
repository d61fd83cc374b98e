"""Small filters for showing findings rows (lists of dicts) as tables."""

from django import template

from diagnostics import query_texts

register = template.Library()


@register.filter
def get_item(row, key):
    """row[key] for a dict row (templates cannot index with a variable)."""
    if isinstance(row, dict):
        return row.get(key)
    return None


@register.simple_tag(takes_context=True)
def finding_cell(context, row, key):
    """row[key] as the signed-in user may read it (query texts: responders and up)."""
    value = get_item(row, key)
    if value and query_texts.is_query_key(key):
        request = context.get("request")
        if not query_texts.may_read(getattr(request, "user", None)):
            return query_texts.HIDDEN
    return "" if value is None else value


@register.filter
def finding_columns(rows):
    """Column names over a list of dict rows, in first-seen order."""
    columns: list[str] = []
    for row in rows or []:
        if isinstance(row, dict):
            for key in row:
                if key not in columns:
                    columns.append(key)
    return columns


@register.filter
def subtract(value, arg):
    """value - arg for integers (remaining rows)."""
    try:
        return int(value) - int(arg)
    except (TypeError, ValueError):
        return ""
