"""An inline SVG chart of an integration's activity: records synced and failed per time slot.

Drawn on the server as plain SVG (no chart library, no script): the page stays a template and
the chart works with JavaScript off.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from markupsafe import Markup

from crmhost.services.monitoring import ActivityBucket

__all__ = ["activity_svg"]

WIDTH, HEIGHT = 720, 200
LEFT, BOTTOM, TOP = 40, 24, 10


def _nice_max(value: int) -> int:
    """The axis top: ``value`` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def activity_svg(buckets: Sequence[ActivityBucket], *, label: str) -> Markup:
    """Stacked bars (synced below, failed on top) per bucket, with an axis and a legend."""
    top = _nice_max(max((b.synced + b.failed for b in buckets), default=0))
    plot_w = WIDTH - LEFT - 8
    plot_h = HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(buckets))
    bar = max(1.0, slot * 0.7)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'aria-label="{html.escape(label)}">',
        f"<title>{html.escape(label)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" class="axis"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" class="tick" text-anchor="end">{top}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for i, b in enumerate(buckets):
        x = LEFT + i * slot + (slot - bar) / 2
        synced_h = plot_h * b.synced / top
        failed_h = plot_h * b.failed / top
        tip = f"{b.start:%H:%M} UTC: {b.synced} synced, {b.failed} failed, {b.runs} runs"
        parts.append(f"<g><title>{html.escape(tip)}</title>")
        if b.synced:
            parts.append(
                f'<rect class="synced" x="{x:.1f}" y="{TOP + plot_h - synced_h:.1f}" '
                f'width="{bar:.1f}" height="{synced_h:.1f}"/>'
            )
        if b.failed:
            parts.append(
                f'<rect class="failed" x="{x:.1f}" y="{TOP + plot_h - synced_h - failed_h:.1f}" '
                f'width="{bar:.1f}" height="{failed_h:.1f}"/>'
            )
        parts.append("</g>")
        if i % max(1, len(buckets) // 6) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" class="tick" '
                f'text-anchor="middle">{b.start:%H:%M}</text>'
            )
    parts.append(
        f'<rect class="synced" x="{WIDTH - 190}" y="{TOP}" width="10" height="10"/>'
        f'<text x="{WIDTH - 176}" y="{TOP + 9}" class="tick">synced</text>'
        f'<rect class="failed" x="{WIDTH - 110}" y="{TOP}" width="10" height="10"/>'
        f'<text x="{WIDTH - 96}" y="{TOP + 9}" class="tick">failed</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (numbers and escaped text only)
