"""``healthstack audit verify``: exit 0 on an intact trail, 1 with the first break, 2 if it cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
from tests.conftest import Database
from tests.security.test_audit_store import TAMPERING, chain_of, populate, tamper

from healthstack.security.chain import genesis, link


def audit_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MIGRATION_"))}
    base.update(HEALTHSTACK_ENV="test", **env)
    return subprocess.run([sys.executable, "-m", "healthstack.cli", "audit", "verify", *args],
                          capture_output=True, text=True, env=base, check=False, timeout=60)  # fmt: skip


def test_intact_trail_exits_zero_with_counts(database: Database) -> None:
    populate(database, 7)
    result = audit_cli("--database-url", database.owner_url)
    assert result.returncode == 0, result.stderr
    assert "intact: 7 records in 64 chains" in result.stdout


def test_reads_database_url_as_the_service_role(database: Database) -> None:
    populate(database, 2)
    result = audit_cli(DATABASE_URL=database.url)
    assert result.returncode == 0, result.stderr


def test_tampering_exits_one_naming_the_record(database: Database) -> None:
    populate(database)
    statements, (seq, kind) = TAMPERING["deleted middle"]
    chain = chain_of(database)
    tamper(database, *statements(chain))
    result = audit_cli("--database-url", database.owner_url)
    assert result.returncode == 1
    assert f"chain {chain} seq {seq}: {kind}" in result.stdout
    assert "BROKEN in 1 chain(s)" in result.stdout


def test_unreachable_database_exits_two() -> None:
    result = audit_cli("--database-url", "postgresql://nobody:pw@127.0.0.1:9/none")
    assert result.returncode == 2
    assert "database error" in result.stderr
    assert "pw@" not in result.stderr


def _rewrite_chain(db: Database, chain: int) -> None:
    """What a superuser who knows the algorithm can do: alter a record and recompute the chain."""
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        rows = conn.execute("SELECT seq, content FROM audit_log WHERE chain_id = %s ORDER BY seq",
                            (chain,)).fetchall()  # fmt: skip
        prev = genesis(chain)
        for seq, content in rows:
            content = content.replace("user-2", "user-X")
            prev = link(prev, chain, seq, content)
            conn.execute("UPDATE audit_log SET content = %s, hash = %s, subject = "
                         "replace(subject, 'user-2', 'user-X') WHERE chain_id = %s AND seq = %s",
                         (content, prev, chain, seq))  # fmt: skip
        conn.execute("UPDATE audit_chain SET head = %s WHERE chain_id = %s", (prev, chain))


def test_anchor_catches_a_recomputed_chain(database: Database, tmp_path: Path) -> None:
    populate(database)
    anchor = tmp_path / "heads.json"
    saved = audit_cli("--database-url", database.owner_url, "--save-anchor", str(anchor))
    assert saved.returncode == 0, saved.stderr
    populate(database, 3)  # the trail grows after the anchor was taken: still fine
    _rewrite_chain(database, chain_of(database))
    # Self-consistent again: only the anchor kept outside the database can tell.
    assert audit_cli("--database-url", database.owner_url).returncode == 0
    result = audit_cli("--database-url", database.owner_url, "--anchor", str(anchor))
    assert result.returncode == 1
    assert "differs from the anchored head: chain rewritten" in result.stdout
