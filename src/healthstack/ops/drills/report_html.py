"""``drill --report out.html``: each run's latency and errors over time, with the drill's steps.

One self-contained page, no scripts: an inline SVG per load (the drill, its phases, its control)
with the median latency as a line, the slowest answer of each bucket as dots, the share of failed
requests as red bars along the bottom, and a dashed line labelled at each step the drill took
(surge, termination, freeze, thaw, promotion). Every text is escaped; values are counts and times.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from typing import Any

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 64  # plot margins; marks' labels go under the x axis
ERROR_BAND = 36  # px at the bottom of the plot for the failed-requests bars
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; color: #1a1a1a; margin: 2rem; max-width: 60rem; }
h2 { margin-top: 2rem; } .pass { color: #1b5e20; } .fail { color: #b71c1c; }
svg text { font: 11px system-ui, sans-serif; fill: #1a1a1a; }
"""


def loads(report: dict[str, Any], title: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every load with a timeline in a report, named by where it sits (phases, control)."""
    load = report.get("load")
    if isinstance(load, dict) and "timeline" in load:
        yield title, load
    for key, value in report.items():
        if key == "report" and isinstance(value, dict):  # under "control": its own report
            yield from loads(value, title)
        elif isinstance(value, dict) and key != "load":
            yield from loads(value, f"{title}: {key}")


def _y(ms: float, top_ms: float, plot_h: float) -> float:
    """Log scale from 1 ms to ``top_ms``: a 10 s hang and a 5 ms read on one axis."""
    share = math.log10(max(ms, 1.0)) / math.log10(max(top_ms, 10.0))
    return TOP + plot_h * (1 - min(share, 1.0))


def chart(load: dict[str, Any]) -> str:
    line = load["timeline"]
    buckets, marks = line["buckets"], line["marks"]
    if not buckets:
        return "<p>No requests were made.</p>"
    span = float(max([b["t"] + line["bucket_s"] for b in buckets] + [m["t"] for m in marks]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM - ERROR_BAND
    top_ms = float(max(b["max_ms"] for b in buckets))

    def x(t: float) -> float:
        return LEFT + plot_w * t / span

    parts = [_axes(plot_w, plot_h, span, top_ms)]
    median = " ".join(f"{x(b['t']):.1f},{_y(b['p50_ms'], top_ms, plot_h):.1f}" for b in buckets)
    parts.append(f'<polyline points="{median}" fill="none" stroke="#0d47a1" stroke-width="1.5"/>')
    for b in buckets:
        parts.append(f'<circle cx="{x(b["t"]):.1f}" cy="{_y(b["max_ms"], top_ms, plot_h):.1f}" '
                     f'r="1.6" fill="#616161"/>')  # fmt: skip
        if b["errors"]:
            bar = ERROR_BAND * b["errors"] / b["requests"]
            base = TOP + plot_h + ERROR_BAND
            parts.append(f'<rect class="errors" x="{x(b["t"]):.1f}" y="{base - bar:.1f}" '
                         f'width="{max(1.0, plot_w * line["bucket_s"] / span):.1f}" '
                         f'height="{bar:.1f}" fill="#c62828"><title>{b["errors"]} of '
                         f'{b["requests"]} failed at {b["t"]} s</title></rect>')  # fmt: skip
    for i, mark in enumerate(marks):
        parts.append(_mark(x(mark["t"]), mark["label"], i, plot_h))
    summary = (f"{load['requests']} requests, {load['failed']} failed, p50 {load['p50_ms']} ms, "
               f"p99 {load['p99_ms']} ms, max {load['max_ms']} ms")  # fmt: skip
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-label="{html.escape(summary)}">{"".join(parts)}</svg>'
            f"<p>{html.escape(summary)}</p>")  # fmt: skip


def _axes(plot_w: float, plot_h: float, span: float, top_ms: float) -> str:
    base = TOP + plot_h + ERROR_BAND
    ticks = [ms for ms in (1, 10, 100, 1000, 10000, 100000) if ms <= max(top_ms, 10)]
    labels = "".join(
        f'<text x="{LEFT - 4}" y="{_y(ms, top_ms, plot_h) + 4:.1f}" text-anchor="end">'
        f"{ms if ms < 1000 else f'{ms // 1000}s'}</text>"
        for ms in ticks
    )
    return (f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#424242"/>'
            f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + plot_w}" y2="{base}" stroke="#424242"/>'
            f'{labels}<text x="{LEFT + plot_w}" y="{base + 14}" text-anchor="end">'
            f"{span:.1f} s</text><text x=\"{LEFT}\" y=\"{base + 14}\">0 s</text>"
            f'<text x="4" y="{TOP + plot_h + ERROR_BAND / 2:.0f}">failed</text>')  # fmt: skip


def _mark(at: float, label: str, index: int, plot_h: float) -> str:
    base = TOP + plot_h + ERROR_BAND
    # Staggered rows under the axis, so close steps do not print over each other.
    text_y = base + 28 + 12 * (index % 3)
    return (f'<line class="mark" x1="{at:.1f}" y1="{TOP}" x2="{at:.1f}" y2="{base}" '
            f'stroke="#6a1b9a" stroke-dasharray="4 3"/>'
            f'<text x="{at:.1f}" y="{text_y}" fill="#6a1b9a">{html.escape(label)}</text>')  # fmt: skip


def render(reports: list[dict[str, Any]]) -> str:
    sections = []
    for report in reports:
        verdict = "PASS" if report.get("passed") else "FAIL"
        name = html.escape(str(report.get("drill", "drill")))
        charts = "".join(f"<h3>{html.escape(title)}</h3>{chart(load)}"
                         for title, load in loads(report, str(report.get("drill", ""))))  # fmt: skip
        sections.append(f'<h2>{name}: <span class="{verdict.lower()}">{verdict}</span></h2>'
                        + (charts or "<p>This drill has no request load to draw.</p>"))  # fmt: skip
    legend = ("<p>Blue line: median latency per interval (log scale); grey dots: slowest answer; "
              "red bars: share of requests that failed; dashed lines: the drill's steps.</p>")  # fmt: skip
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>healthstack drills</title><style>" + STYLE + "</style></head><body>"
            "<h1>healthstack drills</h1>" + legend + "".join(sections) + "</body></html>\n")  # fmt: skip
