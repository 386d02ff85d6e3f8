"""Migrations: runs take a lock (one per new pod's initContainer); status reports the head."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
from tests.conftest import create_database

from healthstack.service import migrate
from healthstack.service.embedded_pg import EmbeddedPostgres

LOCK = "SELECT pg_advisory_lock(hashtext('healthstack-migrations'))"


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "MIGRATION_DATABASE_URL": url, "HEALTHSTACK_ENV": "test"}


def _db_command(action: str, url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "healthstack.cli", "db", action]
    return subprocess.run(command, env=_env(url), capture_output=True, text=True, check=False)


def test_migration_waits_for_a_concurrent_one(pg: EmbeddedPostgres) -> None:
    db = create_database(pg, migrated=False)
    with psycopg.connect(db.owner_url, autocommit=True) as holder:
        holder.execute(LOCK)  # another pod is migrating
        command = [sys.executable, "-m", "healthstack.cli", "db", "migrate"]
        waiting = subprocess.Popen(command, env=_env(db.owner_url), stdout=subprocess.DEVNULL)
        time.sleep(3)
        assert waiting.poll() is None, "migrate must wait for the lock holder"
    assert waiting.wait(timeout=60) == 0
    version = pg.psql("SELECT version_num FROM alembic_version", database=db.name).strip()
    assert version == migrate.head_revision()


def test_db_status_and_migrate_commands(pg: EmbeddedPostgres) -> None:
    db = create_database(pg, migrated=False)
    assert _db_command("status", db.owner_url).returncode == 1
    assert _db_command("migrate", db.owner_url).returncode == 0
    status = _db_command("status", db.owner_url)
    assert status.returncode == 0
    assert f"head: {migrate.head_revision()}" in status.stdout


def test_head_revision_agrees_with_alembic() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("postgresql://x/y"))
    assert migrate.head_revision() == script.get_current_head()
