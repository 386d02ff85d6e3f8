"""The command table and its error handling: expected failures are one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _healthstack(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healthstack.cli", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, check=False)  # fmt: skip


def test_help_lists_every_command() -> None:
    result = _healthstack("--help")
    assert result.returncode == 0
    for name in ("serve", "db", "token", "keys", "audit", "check", "secrets", "backup", "drill",
                 "plugins"):  # fmt: skip
        assert name in result.stdout


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://x:secret-pw@127.0.0.1:1/db",
        "postgresql://u:secret-pw@host:notaport/db",
        "notaurl",
    ],
)
@pytest.mark.parametrize("command", [("db", "status"), ("plugins", "list")])
def test_database_failures_are_one_line_without_secrets(url: str, command: tuple[str, ...]) -> None:
    result = _healthstack(*command, DATABASE_URL=url, MIGRATION_DATABASE_URL=url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "secret-pw" not in result.stderr
    assert result.stderr.startswith(f"healthstack {command[0]}: error:")
