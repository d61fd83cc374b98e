"""Server-side SVG charts for the metrics page: no JavaScript, nothing fetched at run time.

Each chart is an <svg role="img"> with a <title> and <desc>; the page also shows the numbers in
a table, so nothing is conveyed by the picture alone. Colours come from CSS classes
(static/quell/quell.css) so they follow the light and dark themes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


# Axis maxima for durations: round numbers of minutes, hours and days.
_DURATION_STEPS = [60 * m for m in (1, 2, 5, 10, 15, 20, 30, 40)] + [
    3600 * h for h in (1, 2, 3, 4, 6, 8, 12, 16, 24, 36, 48, 72, 96, 120, 168, 336, 720)
]


def nice_duration_max(seconds: float) -> float:
    """A round duration at or above `seconds` for the top of a time axis."""
    for step in _DURATION_STEPS:
        if seconds <= step:
            return float(step)
    return _nice_max(seconds / 86400) * 86400


def horizontal_bars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    css: str = "bar",
    width: int = 360,
) -> SafeString:
    """One bar per (label, value), labels on the left, values at the bar's end."""
    row, label_w, pad = 28, 120, 8
    height = max(row * len(items), row) + pad
    top = max((v for _, v in items), default=0) or 1
    scale = (width - label_w - 50) / top
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(items):
        y = pad // 2 + i * row
        w = max(value * scale, 0)
        parts.append(
            f'<text class="chart-label" x="{label_w - 6}" y="{y + 17}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<rect class="{css}" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" '
            f'rx="3"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
        )
        parts.append(
            f'<text class="chart-value" x="{label_w + w + 6:.1f}" y="{y + 17}">'
            f"{escape(fmt(value))}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def grouped_bars(
    groups: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    nice: Callable[[float], float] = _nice_max,
    width: int = 900,
    height: int = 280,
) -> SafeString:
    """Vertical bars: for each group (x), one bar per series (name, css class, values)."""
    left, bottom, top_pad, legend_h = 64, 28, 10, 26
    plot_h = height - bottom - top_pad - legend_h
    plot_w = width - left - 10
    values = [v for _, _, vals in series for v in vals if v is not None]
    axis_max = nice(max(values, default=0))
    group_w = plot_w / max(len(groups), 1)
    bar_w = max(min((group_w - 8) / max(len(series), 1), 28), 2)
    parts = [
        f'<svg class="chart wide" viewBox="0 0 {width} {height}" role="img" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    base_y = top_pad + legend_h + plot_h
    for k in range(5):
        value = axis_max * k / 4
        y = base_y - plot_h * k / 4
        parts.append(
            f'<line class="chart-grid" x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="chart-axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(value))}</text>"
        )
    for gi, group in enumerate(groups):
        gx = left + gi * group_w
        start = gx + (group_w - bar_w * len(series)) / 2
        for si, (name, css, vals) in enumerate(series):
            value = vals[gi]
            if value is None:
                continue
            h = plot_h * value / axis_max
            x = start + si * bar_w
            parts.append(
                f'<rect class="{css}" x="{x:.1f}" y="{base_y - h:.1f}" width="{bar_w - 1:.1f}" '
                f'height="{h:.1f}"><title>{escape(group)}, {escape(name)}: '
                f"{escape(fmt(value))}</title></rect>"
            )
        parts.append(
            f'<text class="chart-axis" x="{gx + group_w / 2:.1f}" y="{base_y + 18}" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
    lx = left
    for name, css, _ in series:
        parts.append(f'<rect class="{css}" x="{lx}" y="4" width="12" height="12" rx="2"/>')
        parts.append(f'<text class="chart-label" x="{lx + 16}" y="14">{escape(name)}</text>')
        lx += 30 + 7 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above
