"""``healthstack compliance report``: every 164.312 safeguard, its tests, live evidence, gaps shown."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from tests.conftest import REPO, Database
from tests.security.conftest import make_state, run_with_pool
from tests.security.test_audit_store import chain_of, populate, tamper

from healthstack.compliance.safeguards import SAFEGUARDS
from healthstack.security import audit
from healthstack.security.anchor import generate_key
from healthstack.security.audit_event import AuditEvent

KEY, PUBLIC = generate_key()
# 45 CFR 164.312: every standard and implementation specification, nothing missing.
CITES = ["164.312(a)(1)", "164.312(a)(2)(i)", "164.312(a)(2)(ii)", "164.312(a)(2)(iii)",
         "164.312(a)(2)(iv)", "164.312(b)", "164.312(c)(1)", "164.312(c)(2)", "164.312(d)",
         "164.312(e)(1)", "164.312(e)(2)(i)", "164.312(e)(2)(ii)"]  # fmt: skip


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "MIGRATION_", "AUDIT_ANCHOR"))}  # fmt: skip
    base.update(HEALTHSTACK_ENV="test", **env)
    return subprocess.run([sys.executable, "-m", "healthstack.cli", "compliance", *args],
                          capture_output=True, text=True, env=base, check=False, timeout=120)  # fmt: skip


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_section_of_164_312_is_mapped_once() -> None:
    assert [s.cite for s in SAFEGUARDS] == CITES
    for safeguard in SAFEGUARDS:
        assert safeguard.mechanism, safeguard.cite
        assert safeguard.tests, safeguard.cite
        assert (REPO / safeguard.doc.split("#")[0]).is_file(), safeguard.doc


def test_every_listed_test_exists_in_the_repository() -> None:
    for safeguard in SAFEGUARDS:
        for node in safeguard.tests:
            path, _, name = node.partition("::")
            assert (REPO / path).is_file(), node
            assert name in _functions(REPO / path), f"{safeguard.cite}: {node} does not exist"


def _break_glass(db: Database, n: int) -> None:
    state = make_state(db.url)

    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            for i in range(n):
                await audit.record(conn, state, AuditEvent(
                    interaction="read", outcome="success", subject=f"doctor-{i}",
                    resource_type="Patient", resource_id="00000000-0000-4000-8000-000000000001",
                    break_glass_reason="patient unconscious in the emergency room"))  # fmt: skip

    run_with_pool(db.url, body, size=1)


def _junit(path: Path) -> Path:
    passed, failed = SAFEGUARDS[0].tests[0], SAFEGUARDS[1].tests[0]

    def case(node: str, inner: str = "") -> str:
        file, _, name = node.partition("::")
        classname = file.removesuffix(".py").replace("/", ".")
        return f'<testcase classname="{classname}" name="{name}">{inner}</testcase>'

    failure = '<failure message="x"/>'
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest">'
                    f"{case(passed)}{case(failed, failure)}</testsuite></testsuites>")  # fmt: skip
    return path


def test_report_with_live_evidence(database: Database, tmp_path: Path) -> None:
    populate(database, 3)
    _break_glass(database, 2)
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    subprocess.run([sys.executable, "-m", "healthstack.cli", "audit", "anchor", "--database-url",
                    database.owner_url, "--out", str(anchors)], check=True, capture_output=True,
                   env={**os.environ, "AUDIT_ANCHOR_KEY": KEY, "HEALTHSTACK_ENV": "test"})  # fmt: skip
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    result = cli("report", "--json", str(out_json), "--html", str(out_html),
                 "--junit", str(_junit(tmp_path / "junit.xml")), "--anchor", str(anchors),
                 "--anchor-public-key", PUBLIC, "--kustomize", str(REPO / "deploy/overlays/staging"),
                 DATABASE_URL=database.url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out_json.read_text())
    evidence = {e["key"]: e for e in report["evidence"]}
    assert evidence["audit"]["status"] == "ok"
    assert evidence["audit"]["details"]["records"] == 5
    assert evidence["anchor"]["status"] == "ok"
    assert evidence["check"]["status"] == "ok"
    assert evidence["break_glass"]["details"].get("awaiting") == 2, evidence["break_glass"]
    assert evidence["break_glass"]["status"] == "problem"
    assert evidence["keys"]["status"] == "gap"  # no rotation recorded: shown as a gap
    assert evidence["backup"]["status"] == "gap"
    rows = {r["cite"]: r for r in report["safeguards"]}
    assert rows["164.312(a)(1)"]["tests"][0]["result"] == "passed"
    assert rows["164.312(a)(2)(i)"]["status"] == "failing"  # a failed test is never hidden
    assert rows["164.312(a)(2)(ii)"]["status"] == "failing"  # break-glass uses unreviewed
    assert rows["164.312(e)(2)(i)"]["status"] == "gap"
    assert rows["164.312(d)"]["status"] == "unproven"  # its tests were not in the JUnit file
    page = out_html.read_text()
    assert page.startswith("<!doctype html>")
    assert "<script" not in page
    assert "164.312(e)(2)(ii)" in page
    assert "not run" in page
    assert "Gap:" in page
    assert "patient unconscious" not in out_json.read_text() + page  # no reason text, no PHI


def test_a_broken_trail_makes_the_audit_safeguards_failing(database: Database,
                                                           tmp_path: Path) -> None:  # fmt: skip
    populate(database, 4)
    chain = chain_of(database)
    tamper(database, f"DELETE FROM audit_log WHERE chain_id = {chain} AND seq = 2")
    out = tmp_path / "r.json"
    assert cli("report", "--json", str(out), "--database-url", database.url).returncode == 0
    report = json.loads(out.read_text())
    assert next(e for e in report["evidence"] if e["key"] == "audit")["status"] == "problem"
    rows = {r["cite"]: r["status"] for r in report["safeguards"]}
    assert rows["164.312(b)"] == rows["164.312(c)(2)"] == "failing"


def test_without_sources_every_evidence_is_a_gap(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = cli("report", "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {e["status"] for e in report["evidence"]} == {"gap"}
    assert report["test_results"] == "not run"
    assert report["summary"]["met"] == 0
    assert "12 safeguards" in result.stdout
    assert "\nevidence: backup       gap" in result.stdout  # the summary table
    assert "compliance evidence: 4 of 4 sources (100%)" in result.stderr  # progress, plain lines


def test_bad_input_is_a_clear_message_and_nothing_written(tmp_path: Path) -> None:
    assert "needs --json FILE and/or --html FILE" in cli("report").stderr
    bad = tmp_path / "junit.xml"
    bad.write_text("<testsuites><testcase")
    out = tmp_path / "r.json"
    result = cli("report", "--json", str(out), "--junit", str(bad))
    assert result.returncode == 2
    assert f"--junit {bad}: not a readable JUnit XML" in result.stderr
    result = cli("report", "--json", str(out), "--kustomize", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "not a folder" in result.stderr
    result = cli("report", "--json", str(out), "--html", str(tmp_path / "no" / "r.html"))
    assert result.returncode == 2
    assert "cannot write" in result.stderr
    assert not out.exists()  # checked before anything is written: never one file of two
    assert "Traceback" not in result.stderr
