"""`healthstack smoke` against a real service: passes when it works, names the step that fails."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import TEST_SECRET_KEY_BASE, Service

from healthstack.security.tokens import mint_dev_token

SCOPES = "user/Patient.cruds user/AuditEvent.rs"


def _smoke(base_url: str, token: str | None, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"} | ({"HEALTHSTACK_SMOKE_TOKEN": token} if token else {})
    return subprocess.run([sys.executable, "-m", "healthstack.cli", "smoke", "--base-url",
                           base_url, *extra], capture_output=True, text=True, env=env,
                          timeout=60, check=False)  # fmt: skip


def test_smoke_passes_on_a_working_service(live_service: Service) -> None:
    proc = _smoke(live_service.base_url, mint_dev_token(TEST_SECRET_KEY_BASE, "smoke", SCOPES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok  ") == 3
    assert "audit trail recorded create, read and delete" in proc.stdout


def test_smoke_names_the_failing_step(live_service: Service) -> None:
    no_audit = mint_dev_token(TEST_SECRET_KEY_BASE, "smoke", "user/Patient.cruds")
    proc = _smoke(live_service.base_url, no_audit)
    assert proc.returncode == 1
    assert "FAIL audit trail: HTTP 403" in proc.stdout
    wrong = _smoke(live_service.base_url, "not-a-token")
    assert wrong.returncode == 1
    assert "FAIL create Patient: HTTP 401" in wrong.stdout


def test_smoke_usage_errors_are_messages(live_service: Service) -> None:
    missing = _smoke(live_service.base_url, None)
    assert missing.returncode == 2
    assert "HEALTHSTACK_SMOKE_TOKEN" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = _smoke("ftp://example", "t")
    assert "--base-url must start with http" in bad.stderr
    down = _smoke("http://127.0.0.1:9", "t")
    assert down.returncode == 1
    assert "FAIL cannot reach" in down.stdout
