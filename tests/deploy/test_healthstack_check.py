"""Our own offline checker (`healthstack check`) finds nothing in either overlay."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.deploy.conftest import CRDS, DEPLOY, ENVIRONMENTS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_findings(env: str) -> None:
    args = ["check", "--kustomize", str(DEPLOY / "overlays" / env)]
    if CRDS.is_dir():  # without the CRDs, custom resources are checked but not schema-validated
        args += ["--crds", str(CRDS)]
    proc = subprocess.run([sys.executable, "-m", "healthstack.cli", *args], capture_output=True,
                          text=True, check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "no findings" in proc.stdout
