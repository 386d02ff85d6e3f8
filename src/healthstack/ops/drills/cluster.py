"""The drills' stand-in for a cluster: one embedded PostgreSQL, service replicas, and HAProxy.

Everything is a real process on loopback: ``healthstack serve`` replicas (the image's command),
the embedded PostgreSQL server (migrated, with the application role the service uses in
production), and HAProxy (see ``haproxy.py``). Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from healthstack.errors import HealthstackError
from healthstack.ops import pgtools
from healthstack.ops.drills.fhir import LOOPBACK
from healthstack.ops.drills.haproxy import HAProxy, Slot
from healthstack.ops.drills.spec import RolloutSpec
from healthstack.ops.processes import serve_command
from healthstack.service import migrate
from healthstack.service.embedded_pg import (
    APP_ROLE,
    DATABASE,
    SUPERUSER,
    EmbeddedPostgres,
    free_port,
)


@dataclass
class Replica:
    slot: Slot
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.slot.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return LOOPBACK.get(f"{self.url}/health/ready", timeout=1).status_code == 200
        return False

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds from process start until readiness answers 200 (the kubelet's view)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise HealthstackError(
                    f"replica {self.slot.name} exited early; log: {self.log_path}"
                )
            if self.ready():
                return time.monotonic() - self.started_at
            time.sleep(0.02)
        raise HealthstackError(
            f"replica {self.slot.name} not ready in {timeout}s; log: {self.log_path}"
        )

    def terminate(self, grace: float) -> tuple[float, bool, int]:
        """SIGTERM, wait ``grace``, SIGKILL if still alive: (seconds, killed, exit code)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=max(grace, 0.1))
            return time.monotonic() - started, False, code
        except subprocess.TimeoutExpired:
            self.process.kill()
            return time.monotonic() - started, True, self.process.wait()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()


@dataclass
class Cluster:
    workdir: Path
    spec: RolloutSpec
    pg: EmbeddedPostgres
    secret_key_base: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    encryption_key: str = field(default_factory=lambda: secrets.token_hex(32))
    backup_key: str = field(default_factory=lambda: secrets.token_hex(32))
    replicas: list[Replica] = field(default_factory=list)
    haproxy: HAProxy | None = None
    database: str = DATABASE  # what new replicas use (the restore drill points them elsewhere)

    def service_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "MIGRATION_", "OTEL_", "ENCRYPTION_"))
        }
        env.update(
            HEALTHSTACK_ENV="test",
            DATABASE_URL=self.pg.url(APP_ROLE, self.database),
            SECRET_KEY_BASE=self.secret_key_base,
            ENCRYPTION_KEY=self.encryption_key,
            BACKUP_KEY=self.backup_key,
            LOG_LEVEL="warning",
            POOL_SIZE="10",
            SHUTDOWN_DRAIN_SECONDS=f"{self.spec.drain_seconds:.3f}",
            DATABASE_STATEMENT_TIMEOUT=f"{self.spec.statement_timeout:.3f}",
            DATABASE_CONNECT_TIMEOUT=f"{self.spec.connect_timeout:.3f}",
            HEALTHSTACK_DATA_DIR=str(self.workdir / "data"),
        )
        return env

    def start_replica(self, slot: Slot) -> Replica:
        log_path = self.workdir / f"{slot.name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                serve_command(slot.port),
                env=self.service_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        replica = Replica(slot, process, log_path)
        self.replicas.append(replica)
        return replica

    def start_haproxy(
        self, slots: list[Slot], retry_on: str = "conn-failure", retries: int = 3
    ) -> HAProxy:
        self.haproxy = HAProxy(self.workdir, self.spec, free_port(), slots, retry_on, retries)
        self.haproxy.start()
        return self.haproxy

    def fleet(self, count: int, retry_on: str = "conn-failure") -> list[Replica]:
        """A fresh load balancer and ``count`` ready replicas in rotation behind it."""
        if self.haproxy:
            self.haproxy.stop()
        slots = make_slots(count)
        haproxy = self.start_haproxy(slots, retry_on)
        replicas = [self.start_replica(s) for s in slots]
        for replica in replicas:
            replica.wait_ready()
            haproxy.set_state(replica.slot.name, "ready")
            haproxy.wait_status(replica.slot.name, "UP", 30)
        return replicas

    def close(self) -> None:
        # Every step runs even if an earlier one fails: nothing is left running after a drill.
        with contextlib.ExitStack() as stack:
            stack.callback(self.pg.destroy)
            if self.haproxy:
                stack.callback(self.haproxy.stop)
            for replica in self.replicas:
                stack.callback(replica.kill)


def make_slots(count: int) -> list[Slot]:
    return [Slot(f"pod{i}", free_port()) for i in range(count)]


def start_database(root: Path, fsync: bool = False, major: int | None = None) -> EmbeddedPostgres:
    """The wheel's PostgreSQL, or the machine's PostgreSQL ``major`` (e.g. Debian's 15)."""
    pg = pgtools.cluster(root, major, fsync=fsync) if major else EmbeddedPostgres(root, fsync=fsync)
    try:
        pg.init()
        pg.start()
        pg.ensure_database()
        migrate.upgrade(pg.url(SUPERUSER))
    except BaseException:
        pg.destroy()
        raise
    return pg


@contextlib.contextmanager
def cluster(
    spec: RolloutSpec, keep: bool = False, fsync: bool = False, major: int | None = None
) -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="hs-drill-"))
    try:
        state = Cluster(workdir, spec, start_database(workdir / "pg", fsync, major))
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        yield state
    finally:
        state.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
