"""Short versions of the reliability drills, with real processes, asserting their targets.

Each runs `healthstack drill NAME --time-scale 0.05` on the prod overlay's Deployment (real service
replicas, embedded PostgreSQL, HAProxy); `make drill` runs the full-length versions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from healthstack.commands.drill import table

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "overlays" / "prod"
pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists(),
                                reason="haproxy not installed: run `make sysdeps`")  # fmt: skip


def drill(name: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    report = tmp_path / f"{name}.json"
    # A bound on a hung subprocess, not a performance assertion: the db-outage drill runs five
    # scenarios (outage, hang, failover and two controls) of mostly wall-clock waiting, ~70 s.
    # Below pytest-timeout's 300 s, so a hang shows the drill's own output, not a selector stack.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BACKUP_"))}
    result = subprocess.run(
        [sys.executable, "-m", "healthstack.cli", "drill", name, "--kustomize", str(OVERLAY),
         "--time-scale", "0.05", "--workers", "6", "--json", str(report),
         "--report", str(tmp_path / f"{name}.html"), *args],
        env=env, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert report.exists(), result.stdout + result.stderr
    data: dict[str, Any] = json.loads(report.read_text())[0]
    assert data["api"], "the FHIR API is not mounted: the drill had nothing to exercise"
    assert result.returncode == (0 if data["passed"] else 1)
    assert "drills: 2 of 2 runs (100%)" in result.stderr  # the drill and its control
    assert f"<h2>{name}: " in (tmp_path / f"{name}.html").read_text()  # --report's page
    return data


def charts(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.html").read_text()


def control(report: dict[str, Any]) -> dict[str, Any]:
    """The negative control ran, failed, and the drill's verdict says so."""
    ran = report["control"]
    assert ran["verdict"] == "FAIL", ran
    assert ran["failed_as_expected"]
    assert report["protected_passed"]
    assert report["verdict"] == "PASS"
    result: dict[str, Any] = ran["report"]
    assert not result["passed"]
    return result


def test_rollout_drops_no_request_and_fails_without_prestop(tmp_path: Path) -> None:
    report = drill("rollout", tmp_path, "--min-requests", "300", "--propagation-seconds", "10")
    marks = [m["label"] for m in report["load"]["timeline"]["marks"]]
    assert marks[0].startswith("surge: ")
    assert marks[-1] == "rollout complete"
    assert "<svg" in charts(tmp_path, "rollout")
    assert "rollout complete" in charts(tmp_path, "rollout")  # the steps drawn over the load
    assert report["load"]["failed"] == 0, report["load"]["failure_reasons"]
    assert report["load"]["requests"] >= 300
    assert report["load"]["during_rollout"] > 0
    assert report["load"]["failed_during_rollout"] == 0
    assert report["load"]["by_operation"].keys() == {"read", "search", "create"}
    # Every replica was replaced and exited by itself (drained), none needed SIGKILL.
    assert len(report["replicas"]) == report["spec"]["replicas"]
    assert all(r["exit_code"] == 0 and not r["killed"] for r in report["replicas"])
    # The mesh's retries come from the rendered VirtualService, which does not retry a 503.
    retry = report["spec"]["retry"]
    assert retry["source"].startswith("VirtualService healthcare-routes")
    assert "5xx" not in retry["retry_on"]
    assert retry["attempts"] == 2
    # Control: without preStop and drain, the pod leaves before routing catches up.
    unprotected = control(report)
    assert unprotected["spec"]["prestop_seconds"] == 0
    assert unprotected["load"]["failures"].get("http:503", 0) > 0
    # ... refused by the proxy for want of a replica, not by the service or its database.
    assert any("No server is available" in r for r in unprotected["load"]["failure_reasons"])
    assert report["passed"]


def test_crash_never_duplicates_or_loses_a_retried_create(tmp_path: Path) -> None:
    report = drill("crash", tmp_path, "--replicas", "2")
    assert report["duplicates"] == 0
    assert report["lost"] == 0
    assert report["created_after_kill"] > 0
    assert report["retried"] > 0  # connection losses really happened and were retried
    assert report["variants"]["none"]["failed_attempts_after_kill"] > 0
    # --report: each variant's POST attempts over time, the kill marked, its failures drawn.
    line = report["variants"]["none"]["load"]["timeline"]
    assert [m["label"] for m in line["marks"]] == ["replica killed (SIGKILL)"]
    assert sum(b["errors"] for b in line["buckets"]) > 0
    page = charts(tmp_path, "crash")
    assert "crash: variants: conn-failure empty-response" in page
    assert page.count("replica killed (SIGKILL)") >= len(report["variants"]) + 1  # and control
    assert 'class="errors"' in page
    # Control: the same writers without If-None-Exist duplicate what they resend.
    unprotected = control(report)
    assert unprotected["duplicates"] > 0
    assert report["passed"]


def test_db_outage_recovers_writes_within_the_bound(tmp_path: Path) -> None:
    report = drill("db-outage", tmp_path, "--replicas", "2", "--outage-seconds", "30")
    page = charts(tmp_path, "db-outage")
    for step in ("database stopped", "database frozen", "database thawed", "standby promoted"):
        assert step in page, step
    assert report["fsync"]  # durability as in production, not the tests' fsync=off
    # A clean stop, then a hang (SIGSTOP: sockets stay open, nothing answers), then the primary
    # killed and a synchronous standby promoted behind the same address: the same targets.
    for kind, phase in (
        ("stop", report),
        ("hang", report["hang"]),
        ("failover", report["failover"]),
    ):
        assert phase["kind"] == kind
        assert phase["acknowledged"] > 0
        assert phase["lost"] == 0
        assert phase["unready_during_outage"]
        assert phase["live_during_outage"]
        assert phase["restarts"] == 0
        assert phase["ready_recovery_s"] is not None
        assert phase["write_recovery_s"] is not None
        assert phase["write_recovery_s"] <= phase["write_bound_s"]
        assert phase["failed_after_bound"] == 0
        assert phase["server_errors"] == 0, phase["load"]["failures"]  # only 503/504
    # While the database hangs, every request is answered (a 503) within the bound that the
    # manifests' DATABASE_STATEMENT_TIMEOUT and DATABASE_CONNECT_TIMEOUT give.
    hang = report["hang"]
    assert hang["slowest_answer_s"] is not None
    assert hang["slowest_answer_s"] <= hang["answer_bound_s"] < hang["outage_s"]
    # Two controls, each failing on its own. The database returns where the service cannot
    # reconnect: writes never recover.
    unprotected = control(report)
    reconnect = unprotected["reconnect"]
    assert not reconnect["passed"]
    assert reconnect["write_recovery_s"] is None
    assert reconnect["failed_after_bound"] > 0
    # The same hang against a service without database timeouts: requests wait for the thaw.
    timeouts = unprotected["timeouts"]
    assert not timeouts["passed"]
    assert timeouts["slowest_answer_s"] > timeouts["answer_bound_s"]
    assert report["passed"]


def test_the_deployed_database_timeouts_answer_before_the_route_gives_up() -> None:
    """The hang drill's answer bound, from the prod overlay, is below the route timeout."""
    from healthstack.ops.drills.db_outage import answer_bound
    from healthstack.ops.drills.spec import load_spec

    spec = load_spec(kustomize=OVERLAY)
    assert (spec.statement_timeout, spec.connect_timeout) == (5.0, 2.0)
    assert answer_bound(spec) < 30  # the VirtualService's route timeout (docs/deploy.md)


def test_restore_brings_everything_back_and_fails_without_a_table(tmp_path: Path) -> None:
    report = drill("restore", tmp_path)
    assert report["versions"] > report["resources"] > 0  # several versions per observation
    assert report["versions_restored"] == report["versions"]
    assert report["audit_restored"] == report["audit_records"] > 0
    assert report["decrypted"] == report["versions"]
    assert report["audit_chain_intact"]
    # On the wheel's PostgreSQL 18 and on Debian's 15, each with its own server's tools.
    assert report["server_majors"] == [18, 15]
    assert all(server["passed"] for server in report["servers"])
    # A service started on each restored database serves every resource and search again.
    assert report["api_read_ok"] == report["api_reads"] > report["resources"]
    # Control: a backup without fhir_resource_version brings no version back.
    unprotected = control(report)
    assert unprotected["control_dropped_table"] == "fhir_resource_version"
    assert unprotected["versions_restored"] == 0
    assert report["passed"]


def test_summary_table_says_fail_when_a_target_is_missed() -> None:
    failing = {"drill": "restore", "passed": False, "api": True, "versions": 3,
               "versions_restored": 2, "audit_records": 1, "audit_restored": 1, "decrypted": 2,
               "audit_chain_intact": True}  # fmt: skip
    assert "| restore | FAIL | 2/3 versions" in table([failing])
