"""The whole bench harness end to end with tiny durations, so `make bench` cannot rot unnoticed."""

from __future__ import annotations

import shutil

import pytest
from bench.suite import Options, run

from bench import table

CASES = ("Patient read", "Patient search identifier", "Observation search date",
         "Condition search patient+category", "Observation $lastn",
         "Vitals ingest (Bundle of 100)")  # fmt: skip


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make sysdeps)")
def test_suite_runs_end_to_end_and_reports_every_case() -> None:
    report = run(Options(seconds=1, warmup=0, patients=4, per_patient=5, starts=1, repeats=2,
                         name="smoke"))  # fmt: skip
    rows = {row.name: row for row in report.rows}
    for name in CASES:
        row = rows[name]
        assert (row.api.requests > 0, row.api.errors) == (True, 0), name
        assert row.raw is not None
        assert (row.raw["requests"] > 0, row.raw["errors"]) == (True, 0), name
        assert row.ratio is not None
        assert row.ratio > 0
        # Every repetition measured the CPU each side spent per request.
        assert len(row.runs) == 2
        for measured in row.runs:
            assert measured.service_cpu_ms > 0, name
            assert measured.api_db_cpu_ms > 0, name
            assert (measured.raw_cpu_ms or 0) > 0, name
            assert (measured.raw_db_cpu_ms or 0) > 0, name
        # Reads also ran open loop at half their measured maximum.
        if name != "Vitals ingest (Bundle of 100)":
            assert len(row.steady) == 2
            assert all(s.sent > 0 and s.errors == 0 and s.p99_ms >= s.p50_ms for s in row.steady)
    assert rows["ceiling: /health"].api.requests_per_s > 0
    assert report.seeded == {"patients": 4, "observations": 20, "conditions": 8,
                             "seconds": pytest.approx(report.seeded["seconds"])}  # fmt: skip
    assert 0 < report.rss_under_load_mib <= report.hwm_mib + 1
    assert len(report.ready_seconds) == 1
    rendered = table.render(report)
    assert all(name in rendered for name in CASES)
    assert len(table.as_json(report)["targets"]) == 6
