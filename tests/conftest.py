"""Shared fixtures: a real PostgreSQL server for the session and real service processes on loopback."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from healthstack.ops.processes import serve_command
from healthstack.service import migrate
from healthstack.service.embedded_pg import APP_ROLE, SUPERUSER, EmbeddedPostgres, free_port

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# Fixed per test session so tests can mint tokens and decrypt what the service wrote.
TEST_SECRET_KEY_BASE = secrets.token_urlsafe(64)
TEST_ENCRYPTION_KEY = secrets.token_hex(32)
TEST_BACKUP_KEY = secrets.token_hex(32)


@dataclass
class Database:
    name: str
    url: str  # the application role (owns nothing)
    owner_url: str  # superuser: migrations and tamper tests


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    server.init()
    server.start()
    server.ensure_database()
    yield server
    server.destroy()


def create_database(pg: EmbeddedPostgres, *, migrated: bool = True) -> Database:
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg.ensure_database(name)
    db = Database(name=name, url=pg.url(APP_ROLE, name), owner_url=pg.url(SUPERUSER, name))
    if migrated:
        migrate.upgrade(db.owner_url)
    return db


@pytest.fixture
def database(pg: EmbeddedPostgres) -> Database:
    """A fresh, migrated database of its own for one test."""
    return create_database(pg)


@pytest.fixture(scope="module")
def module_database(pg: EmbeddedPostgres) -> Database:
    return create_database(pg)


def service_env(db: Database, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "OTEL_"))}
    env.update(
        HEALTHSTACK_ENV="test",
        DATABASE_URL=db.url,
        SECRET_KEY_BASE=TEST_SECRET_KEY_BASE,
        ENCRYPTION_KEY=TEST_ENCRYPTION_KEY,
        BACKUP_KEY=TEST_BACKUP_KEY,
        LOG_LEVEL="info",
        SHUTDOWN_DRAIN_SECONDS="1",
    )
    env.update(overrides)
    return env


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start_service(db: Database, log_path: Path, **env: str) -> Service:
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            serve_command(port),
            env=service_env(db, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = Service(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_ready(service)
    except BaseException:
        service.stop()  # never leave a half-started service behind a failed test
        raise
    return service


def wait_ready(service: Service, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"service exited early:\n{service.logs()[-3000:]}")
        try:
            if httpx.get(f"{service.base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"service not ready in {timeout}s:\n{service.logs()[-3000:]}")


@pytest.fixture(scope="module")
def live_service(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """A real `healthstack serve` process on loopback, shared by one test module."""
    service = start_service(module_database, tmp_path_factory.mktemp("svc") / "service.log")
    yield service
    service.stop()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def pg15(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """Debian's PostgreSQL 15 (`make sysdeps`): backups must work across server major versions."""
    from healthstack.ops.pgtools import cluster

    server = cluster(tmp_path_factory.mktemp("pg15"), 15)
    server.init()
    server.start()
    server.ensure_database()
    yield server
    server.destroy()
