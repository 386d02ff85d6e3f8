"""`healthstack backup create|restore` as an operator runs them, against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from tests.conftest import Database, create_database

from healthstack.errors import HealthstackError
from healthstack.ops.pgtools import tools_for
from healthstack.service.embedded_pg import SUPERUSER, EmbeddedPostgres

ENCRYPTION_KEY = secrets.token_hex(32)
BACKUP_KEY = secrets.token_hex(32)


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "BACKUP_"))}
    base.update(HEALTHSTACK_ENV="test", ENCRYPTION_KEY=ENCRYPTION_KEY, BACKUP_KEY=BACKUP_KEY)
    base.update(env)
    return subprocess.run([sys.executable, "-m", "healthstack.cli", "backup", *args],
                          env=base, capture_output=True, text=True, check=False)  # fmt: skip


def _seed(db: Database) -> None:
    with psycopg.connect(db.owner_url) as conn:
        conn.execute("INSERT INTO service_capability (name, enabled) VALUES ('drill', true)")
        conn.execute("SELECT audit_append(1, '{\"time\": \"2025-01-01T00:00:00+00:00\", "
                     "\"interaction\": \"read\", \"outcome\": \"success\"}')")  # fmt: skip


def _empty_database(pg: EmbeddedPostgres, name: str) -> str:
    pg.ensure_database(name)
    return pg.url(SUPERUSER, name)


def test_create_then_restore_into_an_empty_database(
    pg: EmbeddedPostgres, database: Database, tmp_path: Path
) -> None:
    _seed(database)
    out = tmp_path / "backup"
    created = _cli("create", "--out", str(out), "--database-url", database.owner_url)
    assert created.returncode == 0, created.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tables"]["audit_log"] == 1
    assert b"drill" not in (out / "dump.pgc.enc").read_bytes()  # encrypted, not just compressed
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes == {"manifest.json": 0o600, "dump.pgc.enc": 0o600}
    # Not a terminal: plain progress lines on stderr, then the summary table.
    assert "backup create: " in created.stderr
    assert "B/s, " in created.stderr
    assert "\nrows " in created.stdout
    assert "\x1b" not in created.stderr
    target = _empty_database(pg, f"{database.name}_r")
    restored = _cli("restore", str(out), "--database-url", target)
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restored"] is True  # stdout stays machine-readable
    assert "(100%)" in restored.stderr  # progress against the sealed dump's size
    assert "\nsealed dump " in restored.stderr
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
    again = _cli("restore", str(out), "--database-url", target)
    assert again.returncode == 2
    assert "not empty" in again.stderr


def test_tampered_backup_is_refused_before_touching_the_database(
    pg: EmbeddedPostgres, database: Database, tmp_path: Path
) -> None:
    out = tmp_path / "backup"
    assert _cli("create", "--out", str(out), "--database-url", database.owner_url).returncode == 0
    dump = out / "dump.pgc.enc"
    data = bytearray(dump.read_bytes())
    data[100] ^= 1
    dump.write_bytes(bytes(data))
    target = _empty_database(pg, f"{database.name}_t")
    result = _cli("restore", str(out), "--database-url", target)
    assert result.returncode == 2
    assert "SHA-256" in result.stderr
    with psycopg.connect(target) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BACKUP_KEY": ENCRYPTION_KEY}, "BACKUP_KEY must differ from ENCRYPTION_KEY"),
        ({"BACKUP_KEY": ""}, "BACKUP_KEY is required"),
        ({"BACKUP_KEY": "changeme"}, "placeholder"),
    ],
)
def test_backup_key_is_refused(database: Database, tmp_path: Path, env: dict[str, str],
                               message: str) -> None:  # fmt: skip
    result = _cli(
        "create", "--out", str(tmp_path / "b"), "--database-url", database.owner_url, **env
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_restore_with_another_key_is_refused(database: Database, tmp_path: Path) -> None:
    out = tmp_path / "backup"
    assert _cli("create", "--out", str(out), "--database-url", database.owner_url).returncode == 0
    result = _cli("restore", str(out), "--database-url", database.owner_url,
                  BACKUP_KEY=secrets.token_hex(32))  # fmt: skip
    assert result.returncode == 2
    assert "another BACKUP_KEY" in result.stderr


def test_backup_of_postgresql_15_restores_into_15_and_18(
    pg15: EmbeddedPostgres, pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Each end uses its own server's tools: PostgreSQL 18's pg_restore breaks a 15 server."""
    source = create_database(pg15)
    with psycopg.connect(source.owner_url) as conn:
        assert conn.info.server_version // 10000 == 15
    _seed(source)
    out = tmp_path / "backup"
    created = _cli("create", "--out", str(out), "--database-url", source.owner_url)
    assert created.returncode == 0, created.stderr
    assert json.loads((out / "manifest.json").read_text())["server_major"] == 15
    for server in (pg15, pg):
        target = _empty_database(server, f"{source.name}_r")
        restored = _cli("restore", str(out), "--database-url", target)
        assert restored.returncode == 0, restored.stderr
        with psycopg.connect(target) as conn:
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)


def test_restore_into_an_older_server_is_refused_before_touching_it(
    pg15: EmbeddedPostgres, database: Database, tmp_path: Path
) -> None:
    out = tmp_path / "backup"
    assert _cli("create", "--out", str(out), "--database-url", database.owner_url).returncode == 0
    target = _empty_database(pg15, f"{database.name}_old")
    result = _cli("restore", str(out), "--database-url", target)
    assert result.returncode == 2
    assert "comes from PostgreSQL 18 and the target is PostgreSQL 15" in result.stderr
    assert "Traceback" not in result.stderr
    with psycopg.connect(target) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)


def test_server_without_tools_of_its_version_is_refused_clearly() -> None:
    with pytest.raises(HealthstackError, match="no PostgreSQL 99 client tools were found"):
        tools_for(99, "backup create")
