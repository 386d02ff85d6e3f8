"""`drill --report`: bounded timelines in the JSON, and the HTML drawn from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from healthstack.ops.drills import timeline
from healthstack.ops.drills.report_html import loads, render


@dataclass
class Request:
    started: float
    latency: float
    failure: str | None = None


def test_requests_are_bucketed_by_start_with_marks_relative_to_the_first() -> None:
    samples = [Request(100.0, 0.010), Request(100.05, 0.030), Request(100.25, 2.0, "http:503")]
    line = timeline.build(samples, [(100.2, "database frozen"), (99.0, "before the load")])
    assert line["bucket_s"] == timeline.MIN_BUCKET_S
    assert line["buckets"] == [
        {"t": 0.0, "requests": 2, "errors": 0, "p50_ms": 10.0, "max_ms": 30.0},
        {"t": 0.2, "requests": 1, "errors": 1, "p50_ms": 2000.0, "max_ms": 2000.0},
    ]
    assert line["marks"] == [{"t": 0.2, "label": "database frozen"}]


def test_a_long_drill_stays_bounded() -> None:
    samples = [Request(i * 0.01, 0.005) for i in range(60_000)]  # ten minutes at 100 req/s
    line = timeline.build(samples, [])
    assert len(line["buckets"]) <= timeline.MAX_BUCKETS
    assert sum(b["requests"] for b in line["buckets"]) == len(samples)
    assert timeline.build([], [(1.0, "x")]) == {"bucket_s": 0.1, "buckets": [], "marks": []}


def _report() -> dict[str, object]:
    samples = [Request(10 + i * 0.1, 0.02 if i < 30 or i > 60 else 9.0,
                       "http:503" if 40 < i < 50 else None) for i in range(100)]  # fmt: skip
    marks = [(13.0, "database frozen"), (16.0, "<thawed> & back")]
    load = {"requests": 100, "failed": 9, "p50_ms": 20.0, "p99_ms": 9000.0, "max_ms": 9000.0,
            "timeline": timeline.build(samples, marks)}  # fmt: skip
    control = {"verdict": "FAIL", "report": {"timeouts": {"load": load}}}
    return {"drill": "db-outage", "passed": True, "load": load, "hang": {"load": load},
            "control": control}  # fmt: skip


def test_every_load_is_drawn_with_its_marks_and_failures() -> None:
    report = _report()
    assert [title for title, _ in loads(report, "db-outage")] == [
        "db-outage", "db-outage: hang", "db-outage: control: timeouts"]  # fmt: skip
    page = render([report])
    assert page.count("<svg") == 3
    assert page.count('class="mark"') == 6  # two steps in each of the three charts
    assert "database frozen" in page
    assert "&lt;thawed&gt; &amp; back" in page
    assert "<thawed>" not in page
    assert 'class="errors"' in page
    assert "9 of" not in page
    assert "<script" not in page
    assert re.search(r'class="pass">PASS<', page)


def test_a_drill_without_load_says_so() -> None:
    page = render([{"drill": "restore", "passed": False, "tables": {}}])
    assert "no request load to draw" in page
    assert 'class="fail">FAIL<' in page
