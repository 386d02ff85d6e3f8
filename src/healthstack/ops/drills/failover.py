"""A streaming standby for the database-outage drill, and its promotion behind the same address.

As CloudNativePG does it: a hot standby fed by streaming replication, synchronous
(``synchronous_standby_names = '*'``), so a commit is acknowledged only once the standby has it.
Failover: the primary dies (``pg_ctl stop -m immediate``), the standby is promoted, and the
address the service uses (the ``-rw`` Service in the cluster; here the primary's port) moves to
it. The service must reconnect by itself and lose no acknowledged write.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from healthstack.errors import HealthstackError
from healthstack.service.embedded_pg import SUPERUSER, SYSTEM_USER, EmbeddedPostgres

SYNC_SQL = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"


def start_standby(primary: EmbeddedPostgres, root: Path) -> EmbeddedPostgres:
    """A synchronous hot standby of ``primary`` on a port of its own."""
    standby = EmbeddedPostgres(root, bindir=primary.bindir, fsync=primary.fsync)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(primary.root.stat().st_mode & 0o777)
    for secret in primary.root.glob("*.password"):
        shutil.copy2(secret, root / secret.name)  # same roles, same passwords
    standby.pgdata.mkdir(mode=0o700)
    user = SYSTEM_USER if os.geteuid() == 0 else None
    if user:
        shutil.chown(standby.pgdata, pwd.getpwnam(user).pw_name)
    env = {**os.environ, "PGPASSWORD": primary.password(SUPERUSER)}
    command = [str(standby.tools() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
               "-U", SUPERUSER, "-D", str(standby.pgdata), "-R", "-X", "stream", "--no-sync",
               # An immediate checkpoint: the default spread one waited up to 150 s for the
               # primary's checkpoint_completion_target (most of the db-outage drill's time).
               "--checkpoint=fast"]  # fmt: skip
    result = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        user=user,
        group=user,
        extra_groups=[] if user else None,
    )
    if result.returncode != 0:
        raise HealthstackError(f"pg_basebackup failed: {result.stderr.strip()[-500:]}")
    standby.start()
    with psycopg.connect(primary.url(SUPERUSER, "postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        conn.execute("SELECT pg_reload_conf()")
        _wait_sync(conn)
    return standby


def _wait_sync(conn: psycopg.Connection[tuple[int]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(SYNC_SQL).fetchone()
        if row and row[0]:
            return
        time.sleep(0.05)
    raise HealthstackError("the standby did not become a synchronous replica")


def promote(primary: EmbeddedPostgres, standby: EmbeddedPostgres) -> None:
    """Promote ``standby`` and move the primary's address to it (the primary is already down)."""
    standby._pg("pg_ctl", "-D", str(standby.pgdata), "promote", "-w", "-t", "60")
    standby.stop("fast")
    standby.port = primary.port
    standby.start()
