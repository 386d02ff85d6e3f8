"""`healthstack serve` as a user runs it: production refusals, and the embedded development database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from healthstack.service.embedded_pg import free_port


def _serve(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "healthstack.cli", "serve", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _clean_env(**extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "SECRET_", "ENCRYPTION_", "BACKUP_", "HEALTHSTACK_"))
    }
    return {**keep, **extra}


def test_production_refuses_the_seed_placeholder_key_by_name() -> None:
    env = _clean_env(
        HEALTHSTACK_ENV="production",
        ENCRYPTION_KEY="32_BYTE_HEX_KEY_FOR_PHI_ENCRYPTION",
        SECRET_KEY_BASE="x" * 64,
        DATABASE_URL="postgresql://a:b@127.0.0.1:1/db",
    )
    proc = _serve(env)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "ENCRYPTION_KEY" in output
    assert "32_BYTE_HEX_KEY_FOR_PHI_ENCRYPTION" not in output
    assert "Traceback" not in output


def test_production_without_database_url_refuses_embedded_database() -> None:
    env = _clean_env(
        HEALTHSTACK_ENV="production", ENCRYPTION_KEY="ab" * 32, SECRET_KEY_BASE="x" * 64
    )
    proc = _serve(env)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "DATABASE_URL" in output


def test_embedded_development_server_starts_migrates_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = _clean_env(HEALTHSTACK_DATA_DIR=str(tmp_path / "data"), PORT=str(port))
    proc = _serve(env)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code
            except httpx.TransportError:
                time.sleep(0.1)
        if status != 200:
            proc.kill()
            raise AssertionError(f"not ready in 30 s:\n{proc.communicate()[0][-3000:]}")
        secrets_file = tmp_path / "data" / "dev-secrets.env"
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "DEVELOPMENT MODE" in output
    assert "embedded PostgreSQL stopped" in output
    pid_file = tmp_path / "data" / "postgres" / "pgdata" / "postmaster.pid"
    assert not pid_file.exists(), "the embedded database must be stopped with the service"
