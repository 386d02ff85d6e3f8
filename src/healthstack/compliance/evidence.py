"""Live evidence gathered at report time: each item is ``ok``, ``problem`` or ``gap``.

A gap is evidence that could not be gathered (no database given, no anchor, nothing recorded):
it is shown as a gap, never as a pass. Nothing here reads PHI: counts, times and verdicts only.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from healthstack.errors import HealthstackError
from healthstack.ops.progress import Meter
from healthstack.security import anchor
from healthstack.security.verify import verify

# An anchor older than this means the hourly audit-anchor CronJob is not running.
ANCHOR_MAX_AGE = dt.timedelta(hours=2)
CHECK_TIMEOUT = 300
KEY_ROTATION = """SELECT max(recorded_at) FROM audit_log
WHERE interaction = 'key-rotation' AND outcome = 'success'"""
KEY_USE = "SELECT key_id, count(*) FROM fhir_resource GROUP BY key_id ORDER BY key_id"
# Break-glass uses with no review yet (audit_review comes from migration 0011; before it, all).
HAS_REVIEWS = "SELECT to_regclass('audit_review') IS NOT NULL"
ALL_USES = "SELECT count(*) FROM audit_log l WHERE l.break_glass"
AWAITING = (
    ALL_USES
    + """ AND NOT EXISTS (SELECT 1 FROM audit_review r
     WHERE r.chain_id = l.chain_id AND r.seq = l.seq)"""
)


@dataclass(frozen=True)
class Evidence:
    key: str
    title: str
    status: str  # ok | problem | gap
    summary: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Sources:
    database_url: str | None = None
    anchor: Path | None = None
    anchor_public_key: str | None = None
    kustomize: Path | None = None


def gather(sources: Sources, now: dt.datetime, meter: Meter | None = None) -> list[Evidence]:
    """Each source in turn; ``meter`` counts the four steps (the trail walk can take minutes)."""
    steps: list[Callable[[], list[Evidence]]] = [
        lambda: [_audit(sources)],
        lambda: [_anchor(sources, now)],
        lambda: [_check(sources)],
        lambda: _database_items(sources, now),
    ]
    if meter is not None:
        meter.set_total(len(steps))
    items: list[Evidence] = []
    for step in steps:
        items += step()
        if meter is not None:
            meter.update()
    items.append(Evidence("backup", "Last backup and restore drill", "gap",
                          "not recorded by healthstack: attach the backup job's and the restore "
                          "drill's own records", {}))  # fmt: skip
    return items


def _audit(sources: Sources) -> Evidence:
    title = "Audit trail verification (`audit verify`)"
    if not sources.database_url:
        return Evidence("audit", title, "gap", "no --database-url: trail not verified", {})
    try:
        report = verify(sources.database_url)
    except psycopg.Error as exc:
        return Evidence("audit", title, "gap", f"database error ({type(exc).__name__})", {})
    details = {"records": report.records, "chains": report.chains,
               "problems": [str(p) for p in report.problems]}  # fmt: skip
    if report.intact:
        return Evidence("audit", title, "ok",
                        f"intact: {report.records} records in {report.chains} chains", details)  # fmt: skip
    return Evidence("audit", title, "problem",
                    f"BROKEN in {len(report.problems)} chain(s)", details)  # fmt: skip


def _anchor(sources: Sources, now: dt.datetime) -> Evidence:
    title = "Newest signed anchor of the chain heads"
    if sources.anchor is None or not sources.anchor_public_key:
        return Evidence("anchor", title, "gap",
                        "no --anchor and --anchor-public-key: anchor age unknown", {})  # fmt: skip
    try:
        newest = anchor.load(sources.anchor, anchor.public_key(sources.anchor_public_key))
    except (HealthstackError, ValueError) as exc:
        return Evidence("anchor", title, "problem", str(exc), {})
    age = now - dt.datetime.fromisoformat(newest.time)
    details = {"time": newest.time, "age_seconds": int(age.total_seconds())}
    status = "ok" if age <= ANCHOR_MAX_AGE else "problem"
    return Evidence("anchor", title, status, f"newest anchor {newest.time}, {_age(age)} old",
                    details)  # fmt: skip


def _check(sources: Sources) -> Evidence:
    title = "`healthstack check` on the deployed manifests"
    if sources.kustomize is None:
        return Evidence("check", title, "gap", "no --kustomize: manifests not checked", {})
    # A child process: the checker's YAML/schema imports stay out of this one, and its exit code
    # is exactly what an operator running `healthstack check` would see.
    command = [sys.executable, "-m", "healthstack.cli", "check", "--kustomize",
               str(sources.kustomize), "--format", "json"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT,
                              check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Evidence("check", title, "gap", f"check did not finish in {CHECK_TIMEOUT} s", {})
    findings = _findings(done) if done.returncode in (0, 1) else None
    if findings is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Evidence("check", title, "gap", f"check could not run: {last[:200]}", {})
    details = {"overlay": str(sources.kustomize), "findings": len(findings),
               "ids": sorted({str(f.get("check")) for f in findings})}  # fmt: skip
    if done.returncode == 0:
        return Evidence("check", title, "ok", f"{sources.kustomize}: no findings", details)
    return Evidence("check", title, "problem",
                    f"{sources.kustomize}: {len(findings)} finding(s)", details)  # fmt: skip


def _findings(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]] | None:
    try:
        findings = json.loads(done.stdout)["findings"]
    except (ValueError, KeyError, TypeError):
        return None
    return findings if isinstance(findings, list) else None


def _database_items(sources: Sources, now: dt.datetime) -> list[Evidence]:
    keys_title, glass_title = "PHI encryption keys", "Break-glass uses awaiting review"
    if not sources.database_url:
        return [Evidence("keys", keys_title, "gap", "no --database-url", {}),
                Evidence("break_glass", glass_title, "gap", "no --database-url", {})]  # fmt: skip
    try:
        with psycopg.connect(sources.database_url) as conn:
            rotated = conn.execute(KEY_ROTATION).fetchone()
            use = conn.execute(KEY_USE).fetchall()
            reviews = conn.execute(HAS_REVIEWS).fetchone()
            awaiting = conn.execute(AWAITING if reviews and reviews[0] else ALL_USES).fetchone()
    except psycopg.Error as exc:
        reason = f"database error ({type(exc).__name__})"
        return [Evidence("keys", keys_title, "gap", reason, {}),
                Evidence("break_glass", glass_title, "gap", reason, {})]  # fmt: skip
    return [_keys(keys_title, rotated[0] if rotated else None, use, now),
            _glass(glass_title, int(awaiting[0]) if awaiting else 0)]  # fmt: skip


def _keys(title: str, rotated: dt.datetime | None, use: list[Any], now: dt.datetime) -> Evidence:
    # Key ids are fingerprints (not secrets); the rows under each show a rotation's progress.
    details: dict[str, Any] = {"rows_by_key": {str(k): int(n) for k, n in use},
                               "last_rotation": rotated.isoformat() if rotated else None}  # fmt: skip
    in_use = f"{len(use)} key id(s) in use"
    if rotated is None:
        return Evidence("keys", title, "gap",
                        f"{in_use}; no key rotation recorded in the audit trail", details)  # fmt: skip
    return Evidence("keys", title, "ok",
                    f"{in_use}; last rotation {rotated:%Y-%m-%d} ({_age(now - rotated)} ago)",
                    details)  # fmt: skip


def _glass(title: str, awaiting: int) -> Evidence:
    status = "ok" if awaiting == 0 else "problem"
    return Evidence("break_glass", title, status, f"{awaiting} awaiting review",
                    {"awaiting": awaiting})  # fmt: skip


def _age(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def as_dict(item: Evidence) -> dict[str, Any]:
    return asdict(item)
