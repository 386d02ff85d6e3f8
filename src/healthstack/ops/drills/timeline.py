"""A drill's load over time, bounded: requests bucketed by when they started, with event marks.

Each bucket holds counts and latencies, never request content, so the JSON report and the HTML
drawn from it (``report_html``) stay small however long the drill ran: at most ``MAX_BUCKETS``
buckets, each at least ``MIN_BUCKET_S`` wide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

MAX_BUCKETS = 240
MIN_BUCKET_S = 0.1


class Timed(Protocol):
    started: float
    latency: float
    failure: str | None


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def percentile_ms(latencies: Sequence[float], p: float) -> float:
    """Latency in milliseconds at percentile ``p`` (nearest rank); 0 with no latencies."""
    ordered = sorted(latencies)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[rank] * 1000


def load(samples: Sequence[Timed], marks: Sequence[tuple[float, str]]) -> dict[str, Any]:
    """A load's summary as the report prints it (counts, p50/p99/max) with its timeline."""
    latencies = [s.latency for s in samples]
    return {
        "requests": len(samples),
        "failed": sum(1 for s in samples if s.failure),
        **{
            f"{name}_ms": round(percentile_ms(latencies, p), 2)
            for name, p in (("p50", 50), ("p99", 99), ("max", 100))
        },
        "timeline": build(samples, marks),
    }


def build(samples: Iterable[Timed], marks: Sequence[tuple[float, str]]) -> dict[str, Any]:
    """``{"bucket_s", "buckets": [{t, requests, errors, p50_ms, max_ms}], "marks": [{t, label}]}``.

    Times are seconds from the first request's start (monotonic clock, as the marks)."""
    ordered = sorted(samples, key=lambda s: s.started)
    if not ordered:
        return {"bucket_s": MIN_BUCKET_S, "buckets": [], "marks": []}
    origin = ordered[0].started
    span = max(ordered[-1].started - origin, max((t - origin for t, _ in marks), default=0.0))
    width = max(MIN_BUCKET_S, math.ceil(span / MAX_BUCKETS * 10) / 10)
    grouped: dict[int, list[Timed]] = {}
    for sample in ordered:
        grouped.setdefault(int((sample.started - origin) / width), []).append(sample)
    buckets = [
        {
            "t": round(index * width, 2),
            "requests": len(group),
            "errors": sum(1 for s in group if s.failure),
            "p50_ms": round(_median([s.latency for s in group]) * 1000, 2),
            "max_ms": round(max(s.latency for s in group) * 1000, 2),
        }
        for index, group in sorted(grouped.items())
    ]
    kept = [{"t": round(t - origin, 2), "label": label} for t, label in marks if t >= origin]
    return {"bucket_s": width, "buckets": buckets, "marks": kept}
