"""How tests, benchmarks and drills start the real service: one command line, shared."""

from __future__ import annotations

import sys


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """`healthstack serve` on loopback against an already migrated database (as in a pod)."""
    return [sys.executable, "-m", "healthstack.cli", "serve", "--no-migrate",
            "--host", host, "--port", str(port)]  # fmt: skip
