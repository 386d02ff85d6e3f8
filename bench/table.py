"""The suite's one table, the target verdicts, and the JSON written under bench/results/."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any

from bench.suite import TARGETS, Report, Row

HEADER = (
    f"{'case':33} {'unit':>11} {'API':>8} {'raw':>8} {'API/raw [min-max]':>18} "
    f"{'p99':>7} {'raw p99':>7} {'svc CPU ms':>16} {'raw CPU':>7} {'DB CPU api/raw':>14} "
    f"{'steady p50/p99/p99.9 ms':>24} {'err':>4}"
)


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _spread(values: tuple[float, float, float] | None, scale: float, spec: str) -> str:
    if values is None:
        return "-"
    median, low, high = (v * scale for v in values)
    return f"{median:{spec}} [{low:{spec}}-{high:{spec}}]"


def _steady(row: Row) -> str:
    if not row.steady:
        return "-"
    p50 = statistics.median(s.p50_ms for s in row.steady)
    p99 = statistics.median(s.p99_ms for s in row.steady)
    p999 = statistics.median(s.p999_ms for s in row.steady)
    return f"{p50:.1f}/{p99:.1f}/{p999:.1f}"


def line(row: Row) -> str:
    n = row.per_request
    raw = row.raw or {}
    errors = sum(r.api.errors + int((r.raw or {}).get("errors", 0)) for r in row.runs)
    errors += sum(s.errors for s in row.steady)
    return (
        f"{row.name:33} {row.unit:>11} {row.api.requests_per_s * n:8.0f} "
        f"{_cell(raw.get('requests_per_s', 0) * n if raw else None, '8.0f'):>8} "
        f"{_spread(row.ratio_spread(), 100, '.0f'):>18} "
        f"{row.api.p99_ms:7.1f} {_cell(raw.get('p99_ms'), '7.1f'):>7} "
        f"{_spread(row.spread('service_cpu_ms'), 1, '.2f'):>16} "
        f"{_cell(_median(row, 'raw_cpu_ms'), '7.2f'):>7} "
        f"{_cell(_median(row, 'api_db_cpu_ms'), '.2f')}/{_cell(_median(row, 'raw_db_cpu_ms'), '.2f'):>6} "
        f"{_steady(row):>24} {errors:4d}"
    )


def _median(row: Row, figure: str) -> float | None:
    spread = row.spread(figure)
    return None if spread is None else spread[0]


def verdicts(report: Report) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for each issue-18 target, on medians of the repeated runs."""
    by_name = {row.name: row for row in report.rows}
    read, ingest = by_name["Patient read"], by_name["Vitals ingest (Bundle of 100)"]
    searches = [r for r in report.rows if r.raw is not None and r.per_request == 1
                and r.name != "Patient read"]  # fmt: skip
    worst_search = min(searches, key=lambda r: r.ratio or 0)
    steady = [r for r in report.rows if r.steady]
    worst_steady = max(steady, key=lambda r: (r.steady_p99() or (0.0,))[0])
    worst_p99 = (worst_steady.steady_p99() or (0.0,))[0]
    ready = statistics.median(report.ready_seconds)
    return [
        ("Patient read >= 60% of raw", (read.ratio or 0) >= TARGETS["read_ratio"],
         f"{(read.ratio or 0) * 100:.0f}%"),
        ("every search >= 50% of raw", (worst_search.ratio or 0) >= TARGETS["search_ratio"],
         f"worst {worst_search.name}: {(worst_search.ratio or 0) * 100:.0f}%"),
        ("ingest >= 35% of COPY", (ingest.ratio or 0) >= TARGETS["ingest_ratio"],
         f"{(ingest.ratio or 0) * 100:.0f}%"),
        ("p99 < 20 ms at a steady 50% load", worst_p99 < TARGETS["steady_p99_ms"],
         f"worst {worst_steady.name}: {worst_p99:.1f} ms"),
        ("RSS per worker < 150 MiB under load", report.rss_under_load_mib < TARGETS["rss_mib"],
         f"{report.rss_under_load_mib:.0f} MiB (peak {report.hwm_mib:.0f})"),
        ("ready < 2 s after start (median)", ready < TARGETS["ready_s"], f"{ready:.2f} s"),
    ]  # fmt: skip


def render(report: Report) -> str:
    o = report.options
    out = [
        f"healthstack bench: 1 worker, pool {o.pool_size}, {o.connections} connections, "
        f"{o.seconds:g} s per run, medians of {o.repeats} runs [min-max]; seeded {report.seeded}",
        "CPU in ms per request: svc = the service process, raw = the baseline program, "
        "DB = every PostgreSQL process (API request / baseline operation)",
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
    rows = {
        row.name: {
            "unit": row.unit,
            "per_request": row.per_request,
            "runs": [asdict(run) | {"ratio": run.ratio} for run in row.runs],
            "ratio_median_min_max": row.ratio_spread(),
            "service_cpu_ms_median_min_max": row.spread("service_cpu_ms"),
            "steady": [asdict(s) for s in row.steady],
        }
        for row in report.rows
    }
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
