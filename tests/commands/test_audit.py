"""``healthstack audit verify``: exit 0 on an intact trail, 1 with the first break, 2 if it cannot run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from tests.conftest import Database
from tests.security.test_audit_store import TAMPERING, chain_of, populate, tamper

from healthstack.security.anchor import generate_key
from healthstack.security.chain import genesis, link

KEY, PUBLIC = generate_key()


def audit_cli(*args: str, action: str = "verify", **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "MIGRATION_", "AUDIT_ANCHOR"))}  # fmt: skip
    base.update(HEALTHSTACK_ENV="test", **env)
    return subprocess.run([sys.executable, "-m", "healthstack.cli", "audit", action, *args],
                          capture_output=True, text=True, env=base, check=False, timeout=60)  # fmt: skip


def take_anchor(db: Database, out: Path, key: str = KEY) -> subprocess.CompletedProcess[str]:
    return audit_cli("--database-url", db.owner_url, "--out", str(out), action="anchor",
                     AUDIT_ANCHOR_KEY=key)  # fmt: skip


def verify_with(db: Database, anchors: Path) -> subprocess.CompletedProcess[str]:
    return audit_cli("--database-url", db.owner_url, "--anchor", str(anchors),
                     "--anchor-public-key", PUBLIC)  # fmt: skip


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
    anchors = tmp_path / "anchors.jsonl"
    saved = take_anchor(database, anchors)
    assert saved.returncode == 0, saved.stderr
    assert "anchored 64 chain heads" in saved.stdout
    populate(database, 3)  # the trail grows after the anchor was taken: still fine
    assert verify_with(database, anchors).returncode == 0
    _rewrite_chain(database, chain_of(database))
    # Self-consistent again: only the anchor kept outside the database can tell.
    assert audit_cli("--database-url", database.owner_url).returncode == 0
    result = verify_with(database, anchors)
    assert result.returncode == 1
    assert "differs from the anchored head: chain rewritten" in result.stdout


def test_anchor_catches_a_cut_tail_with_its_head_rolled_back(database: Database,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """Issue 12 item 14: records and head removed together look like a shorter chain."""
    populate(database)
    anchors = tmp_path / "anchors"
    anchors.mkdir()
    assert take_anchor(database, anchors).returncode == 0
    chain = chain_of(database)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_log WHERE chain_id = %s AND seq > 9", (chain,))
        head = conn.execute("SELECT hash FROM audit_log WHERE chain_id = %s AND seq = 9",
                            (chain,)).fetchone()  # fmt: skip
        assert head is not None
        conn.execute("UPDATE audit_chain SET seq = 9, head = %s WHERE chain_id = %s",
                     (head[0], chain))  # fmt: skip
    assert audit_cli("--database-url", database.owner_url).returncode == 0  # self-consistent
    result = verify_with(database, anchors)
    assert result.returncode == 1
    assert "ends before its anchored seq" in result.stdout


def test_anchors_append_and_never_overwrite(database: Database, tmp_path: Path) -> None:
    populate(database, 2)
    as_file, as_dir = tmp_path / "a.jsonl", tmp_path / "dir"
    as_dir.mkdir()
    for _ in range(2):
        assert take_anchor(database, as_file).returncode == 0
        assert take_anchor(database, as_dir).returncode == 0
    assert len(as_file.read_text().splitlines()) == 2
    assert len(list(as_dir.glob("anchor-*.json"))) == 2
    assert oct(as_file.stat().st_mode & 0o777) == "0o600"


def test_forged_unsigned_or_foreign_anchors_are_refused(database: Database,
                                                        tmp_path: Path) -> None:  # fmt: skip
    populate(database, 2)
    anchors = tmp_path / "anchors.jsonl"
    assert take_anchor(database, anchors).returncode == 0
    genuine = anchors.read_text()
    record = json.loads(genuine)
    forged = tmp_path / "forged.jsonl"
    record["chains"]["0"] = [0, "00" * 32]
    forged.write_text(json.dumps(record) + "\n")
    unsigned = tmp_path / "unsigned.json"
    unsigned.write_text(json.dumps({"0": [0, "00" * 32]}))
    foreign = tmp_path / "foreign.jsonl"
    other_key, _ = generate_key()
    assert take_anchor(database, foreign, other_key).returncode == 0
    for path, words in ((forged, "signature does not verify"), (unsigned, "not a signed anchor"),
                        (foreign, "signed by another key")):  # fmt: skip
        result = verify_with(database, path)
        assert result.returncode == 2, path
        assert words in result.stderr
    assert "needs --anchor-public-key" in audit_cli(
        "--database-url", database.owner_url, "--anchor", str(anchors)).stderr  # fmt: skip


def test_a_broken_trail_is_never_anchored(database: Database, tmp_path: Path) -> None:
    populate(database)
    statements, _ = TAMPERING["altered content"]
    tamper(database, *statements(chain_of(database)))
    result = take_anchor(database, tmp_path / "anchors.jsonl")
    assert result.returncode == 1
    assert not (tmp_path / "anchors.jsonl").exists()
