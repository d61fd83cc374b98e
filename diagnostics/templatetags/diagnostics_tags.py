"""Small filters for showing findings rows (lists of dicts) as tables."""

from django import template

register = template.Library()


@register.filter
def get_item(row, key):
    """row[key] for a dict row (templates cannot index with a variable)."""
    if isinstance(row, dict):
        return row.get(key)
    return None


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
