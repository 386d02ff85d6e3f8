"""The HAProxy configuration mirrors the readiness probe and limits retries to safe conditions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from healthstack.ops.drills.haproxy import Slot, render_config
from healthstack.ops.drills.spec import RolloutSpec

SPEC = RolloutSpec(name="app", replicas=2, max_surge=1, max_unavailable=0, probe_period=5,
                   probe_timeout=3, failure_threshold=2, success_threshold=1, prestop_seconds=15,
                   grace_seconds=65, drain_seconds=5)  # fmt: skip
SLOTS = [Slot("pod0", 40001), Slot("pod1", 40002)]


def test_health_checks_mirror_the_readiness_probe(tmp_path: Path) -> None:
    config = render_config(SPEC, 40000, SLOTS, tmp_path / "s.sock")
    assert "option httpchk GET /health/ready" in config
    assert "server pod0 127.0.0.1:40001 check inter 5000 fall 2 rise 1 disabled" in config
    assert "timeout check 3000" in config


def test_retries_only_on_connection_failure_by_default(tmp_path: Path) -> None:
    config = render_config(SPEC, 40000, SLOTS, tmp_path / "s.sock")
    assert "retry-on conn-failure\n" in config
    assert "empty-response" not in config
    assert "retries 0" in render_config(SPEC, 40000, SLOTS, tmp_path / "s.sock", "none")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (make sysdeps)")
@pytest.mark.parametrize("retry_on", ["none", "conn-failure", "conn-failure empty-response"])
def test_haproxy_accepts_the_config(tmp_path: Path, retry_on: str) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_config(SPEC.scaled(0.05), 40000, SLOTS, tmp_path / "s.sock", retry_on))
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
