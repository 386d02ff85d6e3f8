"""checkov (kubernetes + dockerfile) reports zero failed checks on both overlays and the Dockerfile.

Every skip is written next to the object it concerns (a ``checkov.io/skip`` annotation) and listed
with its reason in docs/deploy.md; this test keeps the two in step.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.deploy.conftest import REPO, SEED, Rendered

CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"


def checkov(directory: Path) -> list[dict[str, Any]]:
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV} missing: run `make tools`")
    proc = subprocess.run(
        [str(CHECKOV), "--framework", "kubernetes,dockerfile", "--skip-download", "--quiet",
         "--output", "json", "--directory", str(directory)],
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip
    assert proc.stdout.strip(), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    return reports if isinstance(reports, list) else [reports]


def _failed(reports: list[dict[str, Any]]) -> list[str]:
    return [f"{c['check_id']} {c['resource']} ({c['file_path']})"
            for r in reports for c in r.get("results", {}).get("failed_checks", [])]  # fmt: skip


def _skipped(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for r in reports for c in r.get("results", {}).get("skipped_checks", [])]


@pytest.fixture(scope="module")
def ours(rendered: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("checkov")
    for env, overlay in rendered.items():
        (folder / f"{env}.yaml").write_text(overlay.text)
    shutil.copy(REPO / "Dockerfile", folder / "Dockerfile")
    return checkov(folder)


def test_zero_failed_checks(ours: list[dict[str, Any]]) -> None:
    frameworks = {r["check_type"] for r in ours}
    assert frameworks == {"kubernetes", "dockerfile"}
    passed = sum(r["summary"]["passed"] for r in ours)
    assert passed > 300, f"only {passed} checks ran"
    assert _failed(ours) == []


def test_every_skip_has_a_reason_listed_in_the_docs(ours: list[dict[str, Any]]) -> None:
    docs = (REPO / "docs" / "deploy.md").read_text()
    for check in _skipped(ours):
        assert len(check.get("suppress_comment") or "") > 30, check["check_id"]
        assert re.search(rf"`{check['check_id']}`", docs), f"{check['check_id']} not in deploy.md"


def test_the_same_run_fails_the_seed() -> None:
    """Control: the identical invocation finds the seed's defects, so zero above means something."""
    failed = _failed(checkov(SEED))
    assert len(failed) >= 20, failed
    assert any(f.startswith("CKV_K8S_43 ") for f in failed)  # image not pinned by digest
