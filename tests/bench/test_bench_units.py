"""The bench's own arithmetic: wrk parsing, raw-baseline percentiles, COPY ids, profile summary,
the A/B report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from bench.ab import Side, report, shifted
from bench.common import parse_wrk
from bench.profile import self_shares, summarize
from bench.rawdb import Copy, fresh_rows
from bench.rawdb import summarize as raw_summary
from bench.syscalls import parse_strace
from bench.workload import TIME_MARK, audit_template

WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:1/health
  1 threads and 32 connections
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  2000 requests in 1.00s, 300.00KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   1999.50
"""


def test_parse_wrk_units_and_errors() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_s == 1999.5
    assert result.p50_ms == pytest.approx(0.812)
    assert result.p99_ms == pytest.approx(1500.0)
    assert (result.requests, result.errors) == (2000, 7)


def test_raw_summary_percentiles() -> None:
    latencies = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    summary = raw_summary(latencies, seconds=2.0, errors=1)
    assert summary["requests_per_s"] == 50.0
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert 99.0 <= summary["p99_ms"] <= 100.0
    with pytest.raises(RuntimeError, match="only 1 iterations"):
        raw_summary([0.1], seconds=1.0, errors=0)


def test_fresh_rows_share_one_new_id_across_tables() -> None:
    copy = Copy(
        tables=[
            ("a", ("t", "id"), [("x", "old1"), ("x", "old2")]),
            ("b", ("id", "v"), [("old1", 1), ("old2", 2)]),
        ],
        id_column={"a": 1, "b": 0},
    )
    first, second = fresh_rows(copy), fresh_rows(copy)
    ids_a = [row[1] for row in first[0][2]]
    assert ids_a == [row[0] for row in first[1][2]]
    assert len(set(ids_a)) == 2
    assert "old1" not in ids_a
    assert ids_a != [row[1] for row in second[0][2]]
    assert [row[1] for row in first[1][2]] == [1, 2]


def test_audit_template_leaves_only_the_time_to_fill() -> None:
    marker, text = audit_template("read", "Patient", resource_id="p1", version=1)
    assert text.count(TIME_MARK) == 1
    assert '"interaction":"read"' in text.replace(" ", "")
    filled = text.replace(TIME_MARK, dt.datetime.now(dt.UTC).isoformat())
    assert TIME_MARK not in filled
    assert marker == "audit"


def test_profile_summary_inclusive_and_self(tmp_path: Path) -> None:
    collapsed = tmp_path / "raw.txt"
    collapsed.write_text(
        "main (/x/src/healthstack/a.py:1);read (/x/src/healthstack/b.py:2) 3\n"
        "main (/x/src/healthstack/a.py:1) 1\n"
    )
    text = summarize(collapsed)
    assert "4 samples" in text
    assert "100.0%  main (healthstack/a.py)" in text
    assert " 75.0%  read (healthstack/b.py)" in text


def test_open_loop_percentiles_are_nearest_rank() -> None:
    from bench.openloop import percentile, summarize

    ordered = [i / 1000 for i in range(1, 1001)]  # 1..1000 ms
    assert percentile(ordered, 0.5) == 500
    assert percentile(ordered, 0.99) == 990
    assert percentile(ordered, 0.999) == 999
    result = summarize(list(reversed(ordered)), rate=100.0, sent=1000, errors=0)
    assert (result.p50_ms, result.max_ms) == (500, 1000)


def test_cpu_seconds_count_this_process_and_its_children() -> None:
    import os
    import subprocess

    from bench.cpu import process_seconds, tree_seconds

    before = process_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))  # burn some CPU
    assert process_seconds(os.getpid()) > before
    # A child's time stays counted after it exits (the parent's cumulative child times).
    start = tree_seconds(os.getpid())
    subprocess.run(["python3", "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert tree_seconds(os.getpid()) > start


def test_scale_records_refer_to_their_own_patient_and_plans_flag_growing_tables() -> None:
    from bench.scale import RECORD, bundle, seq_scans

    entries = bundle(5, 2)["entry"]
    assert len(entries) == 2 * RECORD
    patients = [e["fullUrl"] for e in entries if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 2
    for n, entry in enumerate(entries):
        subject = entry["resource"].get("subject")
        if subject:
            assert subject["reference"] == patients[n // RECORD]
    plan = "Seq Scan on fhir_resource r\n  ->  Seq Scan on audit_chain\n Index Scan on fhir_token"
    assert seq_scans(plan) == ["fhir_resource"]


def test_ab_reports_the_ratio_of_cpu_medians_and_the_shares_that_moved(tmp_path: Path) -> None:
    before, after = Side("before", tmp_path), Side("after", tmp_path)
    before.runs["read"] = [(0.50, 2000.0), (0.40, 2100.0), (0.60, 1900.0)]
    after.runs["read"] = [(0.45, 2050.0), (0.55, 1950.0), (0.90, 1000.0)]  # one noisy run
    line = report(before, after, "read")
    assert "0.500 [0.400-0.600] ms" in line  # median [min-max], never the best run
    assert line.endswith("after/before CPU x1.10")  # 0.55 / 0.50
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text("run (a.py:1);f (a.py:2) 8\nrun (a.py:1);g (a.py:3) 2\n")
    new.write_text("run (a.py:1);f (a.py:2) 5\nrun (a.py:1);g (a.py:3) 5\n")
    assert self_shares(old) == {"f (a.py)": 0.8, "g (a.py)": 0.2}
    moved = shifted(old, new).splitlines()
    assert moved[1].split() == ["80.0%", "->", "50.0%", "f", "(a.py)"]  # the biggest move first


STRACE_SUMMARY = """% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.004000           1      4000           write
 30.00    0.003000           1      3000       12 read
  0.00    0.000000           0         1           close
------ ----------- ----------- --------- --------- ----------------
100.00    0.007000           1      7001        12 total
"""


def test_strace_summary_counts_calls_per_syscall_without_the_total() -> None:
    assert parse_strace(STRACE_SUMMARY) == {"write": 4000, "read": 3000, "close": 1}
