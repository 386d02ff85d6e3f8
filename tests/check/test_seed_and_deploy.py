"""The checker on the seed (every listed defect found) and on our overlays (nothing found)."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthstack.cli import main

from .conftest import REPO, SEED

# Issue 6, section 6: each seed defect and the check that must report it (with a message hint).
SEED_DEFECTS = {
    "namespace-label trap": ("HS-ZT-003", "name': 'istio-system"),
    "istiod egress missing": ("HS-ZT-004", "istiod"),
    "DNS over TCP missing": ("HS-ZT-004", "53/TCP"),
    "ineffective external egress": ("HS-ZT-005", "443/TCP"),
    "Prometheus scraping blocked": ("HS-CO-004", "Prometheus"),
    "PostgreSQL reachable from every pod": ("HS-DH-004", "any (no NetworkPolicy selects"),
    "no default deny": ("HS-ZT-001", "default-deny"),
    "no PDB": ("HS-AV-001", "no PodDisruptionBudget"),
    "replicas beside HPA": ("HS-AV-004", "replicas: 3"),
    "grace period too short": ("HS-AV-006", "terminationGracePeriodSeconds 30"),
    "retries on non-idempotent requests": ("HS-CO-007", "retries on"),
    "mTLS not enforced": ("HS-ZT-006", "STRICT"),
    "secrets as env vars": ("HS-WL-005", "DATABASE_URL"),
    "Secret committed with values": ("HS-DH-002", "committed"),
    "hardening gaps": ("HS-WL-001", "readOnlyRootFilesystem"),
}


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    import contextlib
    import io
    import json

    if not SEED.is_dir():
        pytest.skip(f"seed manifests not available at {SEED}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["check", str(SEED), "--format", "json"])
    assert code == 1
    return list(json.loads(out.getvalue())["findings"])


@pytest.mark.parametrize("defect", SEED_DEFECTS)
def test_seed_defect_is_reported(seed_report: list[dict[str, str]], defect: str) -> None:
    check_id, hint = SEED_DEFECTS[defect]
    messages = [f["message"] for f in seed_report if f["check"] == check_id]
    assert any(hint in m for m in messages), f"{defect}: {check_id} {messages}"


@pytest.mark.needs_crds
@pytest.mark.parametrize("overlay", ["prod", "staging"])
def test_overlay_has_no_findings(
    crds_dir: Path, overlay: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = REPO / "deploy/overlays" / overlay
    if not (folder / "kustomization.yaml").is_file():
        pytest.fail(f"{folder} has no kustomization.yaml")
    # deploy/intent.yaml names the production namespace; staging is checked against the intent
    # inferred from its own objects.
    intent = ["--intent", str(REPO / "deploy/intent.yaml")] if overlay == "prod" else []
    code = main(["check", "--crds", str(crds_dir), "--kustomize", str(folder), *intent])
    out = capsys.readouterr().out
    assert (code, out.strip()) == (0, "no findings")
