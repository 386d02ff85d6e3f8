"""The suite's one table, the target verdicts, and the JSON written under bench/results/."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any

from bench.suite import TARGETS, Report, Row

HEADER = (
    f"{'case':31} {'unit':>11} {'API':>9} {'raw':>9} {'API/raw':>7} "
    f"{'API p50':>8} {'API p99':>8} {'raw p50':>8} {'raw p99':>8} {'err':>5}"
)


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def line(row: Row) -> str:
    n = row.per_request
    raw = row.raw or {}
    ratio = row.ratio
    return (
        f"{row.name:31} {row.unit:>11} {row.api.requests_per_s * n:9.0f} "
        f"{_cell(raw.get('requests_per_s', 0) * n if raw else None, '9.0f'):>9} "
        f"{_cell(ratio * 100 if ratio is not None else None, '6.0f'):>6}% "
        f"{row.api.p50_ms:8.2f} {row.api.p99_ms:8.2f} {_cell(raw.get('p50_ms'), '8.2f'):>8} "
        f"{_cell(raw.get('p99_ms'), '8.2f'):>8} {row.api.errors + int(raw.get('errors', 0)):5d}"
    )


def verdicts(report: Report) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for each issue-8 target."""
    by_name = {row.name: row for row in report.rows}
    read, ingest = by_name["Patient read"], by_name["Vitals ingest (Bundle of 100)"]
    reads = [r for r in report.rows if r.raw is not None and r.per_request == 1]
    worst_p99 = max(r.api.p99_ms for r in reads)
    ready = statistics.median(report.ready_seconds)
    return [
        ("Patient read >= 60% of raw", (read.ratio or 0) >= TARGETS["read_ratio"],
         f"{(read.ratio or 0) * 100:.0f}%"),
        ("ingest >= 25% of COPY", (ingest.ratio or 0) >= TARGETS["ingest_ratio"],
         f"{(ingest.ratio or 0) * 100:.0f}%"),
        ("read p99 < 20 ms (worst read case)", worst_p99 < TARGETS["read_p99_ms"],
         f"{worst_p99:.1f} ms"),
        ("RSS per worker < 150 MiB under load", report.rss_under_load_mib < TARGETS["rss_mib"],
         f"{report.rss_under_load_mib:.0f} MiB (peak {report.hwm_mib:.0f})"),
        ("ready < 2 s after start (median)", ready < TARGETS["ready_s"], f"{ready:.2f} s"),
    ]  # fmt: skip


def render(report: Report) -> str:
    o = report.options
    out = [
        f"healthstack bench: 1 worker, pool {o.pool_size}, {o.connections} connections, "
        f"{o.seconds:g} s per run; seeded {report.seeded}",
        HEADER,
        *(line(row) for row in report.rows),
        "",
        f"resident memory (service process): peak under load {report.rss_under_load_mib:.1f} MiB, "
        f"after load {report.rss_after_mib:.1f} MiB, VmHWM {report.hwm_mib:.1f} MiB",
        "ready after start: " + ", ".join(f"{s:.2f}" for s in report.ready_seconds) + " s",
        "",
        *(f"[{'met' if ok else 'MISS'}] {name}: {value}" for name, ok, value in verdicts(report)),
    ]
    return "\n".join(out)


def as_json(report: Report) -> dict[str, Any]:
    rows = {row.name: {"unit": row.unit, "per_request": row.per_request, "api": asdict(row.api),
                       "raw": row.raw, "ratio": row.ratio} for row in report.rows}  # fmt: skip
    return {
        "options": asdict(report.options),
        "rows": rows,
        "ready_seconds": report.ready_seconds,
        "rss_under_load_mib": report.rss_under_load_mib,
        "rss_after_mib": report.rss_after_mib,
        "hwm_mib": report.hwm_mib,
        "seeded": report.seeded,
        "targets": [{"target": n, "met": ok, "measured": v} for n, ok, v in verdicts(report)],
    }
