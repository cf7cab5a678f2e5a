"""The report's drawings as inline SVG strings: the coverage heatmap and the small price charts. Pure: no I/O.

Every value that reaches the markup goes through `html.escape`; the drawings use
no script, no external font or stylesheet, so the page renders the same offline.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape
from typing import Sequence

from etl.coverage import is_trading_day

LABEL_WIDTH = 150
TOP = 34


@dataclass(frozen=True)
class Row:
    """One asset's line of the heatmap: its span and its stored rows per month (first day of month → count)."""

    spec: str
    asset_type: str
    first: date | None
    last: date | None
    per_month: dict[date, int]


def months_between(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return months


def expected_days(month: date, first: date, last: date, asset_type: str) -> int:
    """Trading days of `month` inside [first, last] by the asset type's calendar (weekdays, or every day)."""
    start = max(month, first)
    end = min(month.replace(day=monthrange(month.year, month.month)[1]), last)
    return sum(is_trading_day(date.fromordinal(d), asset_type) for d in range(start.toordinal(), end.toordinal() + 1))


def share_colour(share: float) -> str:
    """Red (nothing stored) through yellow to green (every trading day stored)."""
    return f"hsl({round(120 * max(0.0, min(1.0, share)))}, 70%, {round(42 + 8 * (1 - share))}%)"


def heatmap(rows: Sequence[Row]) -> str:
    """Assets × months, each cell shaded by the share of the month's trading days stored."""
    spans = [(r.first, r.last) for r in rows if r.first and r.last]
    if not spans:
        return '<p class="empty">No market data stored yet.</p>'
    months = months_between(min(f for f, _ in spans), max(last for _, last in spans))
    cell = max(4, min(16, 900 // len(months)))
    width, height = LABEL_WIDTH + cell * len(months) + 10, TOP + 16 * len(rows) + 4
    parts = [f'<svg class="heatmap" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="coverage heatmap">']
    for i, month in enumerate(months):
        if month.month == 1 or (i == 0 and month.month <= 10):  # years, and the first month when it has room
            x = LABEL_WIDTH + i * cell
            parts.append(f'<text class="month" x="{x}" y="{TOP - 8}">{month.year}-{month.month:02d}</text>'
                         f'<line x1="{x}" y1="{TOP - 4}" x2="{x}" y2="{height}" class="year"/>')
    for j, row in enumerate(rows):
        y = TOP + j * 16
        parts.append(f'<text class="asset" x="0" y="{y + 11}">{escape(row.spec)}</text>')
        for i, month in enumerate(months):
            x = LABEL_WIDTH + i * cell
            label = f"{month.year}-{month.month:02d}"
            expected = expected_days(month, row.first, row.last, row.asset_type) if row.first and row.last else 0
            if expected == 0:
                parts.append(f'<rect class="cell out" x="{x}" y="{y}" width="{cell - 1}" height="14" '
                             f'data-asset="{escape(row.spec)}" data-month="{label}" data-share="">'
                             f'<title>{escape(row.spec)} {label}: outside its stored span</title></rect>')
                continue
            stored = row.per_month.get(month, 0)
            share = min(1.0, stored / expected)
            parts.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell - 1}" height="14" '
                         f'fill="{share_colour(share)}" data-asset="{escape(row.spec)}" data-month="{label}" '
                         f'data-share="{share:.2f}"><title>{escape(row.spec)} {label}: {stored} of {expected} '
                         f'trading days stored</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def price_chart(spec: str, points: Sequence[tuple[date, Decimal, Decimal | None]], *, width: int = 320,
                height: int = 120, max_points: int = 400) -> str:
    """As-traded close (solid) and adjusted close (dashed) of one asset over its stored days."""
    if len(points) < 2:
        return f'<svg class="chart" width="{width}" height="{height}"><text x="8" y="20">too few days to draw' \
               '</text></svg>'
    step = max(1, len(points) // max_points)
    shown = list(points[::step]) + ([points[-1]] if (len(points) - 1) % step else [])
    values = [float(p[1]) for p in shown] + [float(p[2]) for p in shown if p[2] is not None]
    low, high = min(values), max(values)
    high = high if high > low else low + 1
    first, last = shown[0][0].toordinal(), shown[-1][0].toordinal()
    span = max(1, last - first)

    def xy(day: date, value) -> str:
        x = 40 + (width - 48) * (day.toordinal() - first) / span
        y = 8 + (height - 28) * (1 - (float(value) - low) / (high - low))
        return f"{x:.1f},{y:.1f}"

    def path(css: str, column: int) -> str:
        drawn = [xy(p[0], p[column]) for p in shown if p[column] is not None]
        return f'<path class="{css}" d="M{" L".join(drawn)}"/>' if len(drawn) > 1 else ""

    return (f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(spec)} close">'
            f'<text class="axis" x="0" y="14">{_number(high)}</text>'
            f'<text class="axis" x="0" y="{height - 20}">{_number(low)}</text>'
            f'<text class="axis" x="40" y="{height - 4}">{shown[0][0].isoformat()}</text>'
            f'<text class="axis end" x="{width - 8}" y="{height - 4}">{shown[-1][0].isoformat()}</text>'
            f'{path("price", 1)}{path("adj", 2)}</svg>')


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
