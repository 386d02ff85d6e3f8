"""Issue 14's rules: clean on both rendered overlays, a finding each on the manifests before it."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.deploy.conftest import ENVIRONMENTS, Rendered

from healthstack.check.engine import make_context, run_checks
from healthstack.check.loader import load_paths
from healthstack.check.registry import CHECKS

OLD = Path(__file__).parent / "old"
LIMIT_CHECKS = [c for c in CHECKS if c.id.startswith("HS-LIM-")]
# Rules whose mistake the old manifests made in each environment (the others hold in staging).
OLD_FAILS: dict[str, set[str]] = {
    "prod": {c.id for c in LIMIT_CHECKS},
    "staging": {c.id for c in LIMIT_CHECKS} - {"HS-LIM-002"},  # POOL_SIZE 10 x 5 pods fits
}


def _findings(paths: list[Path]) -> list[tuple[str, str]]:
    ctx = make_context(load_paths([str(p) for p in paths]))
    return [(f.check_id, f.message) for f in run_checks(ctx, checks=LIMIT_CHECKS)]


def test_rules_are_registered() -> None:
    assert len(LIMIT_CHECKS) >= 1


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_overlay_has_no_findings(
    env: str, rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    path = tmp_path / f"{env}.yaml"
    path.write_text(rendered[env].text)
    assert _findings([path]) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_old_manifests_fail_each_rule(env: str) -> None:
    found = {check_id for check_id, _ in _findings([OLD / f"{env}.yaml"])}
    assert OLD_FAILS[env] <= found, sorted(OLD_FAILS[env] - found)


IDENTITY_ANNOTATIONS = ("eks.amazonaws.com/role-arn", "iam.gke.io/gcp-service-account",
                        "azure.workload.identity/client-id")  # fmt: skip


def test_wal_archiving_has_a_cloud_identity(rendered: dict[str, Rendered]) -> None:
    """inheritFromIAMRole without a workload identity never archives WAL (issue 14, item 5)."""
    cluster = rendered["prod"].one("Cluster", "postgres")
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["s3Credentials"] == {"inheritFromIAMRole": True}
    annotations = cluster["spec"]["serviceAccountTemplate"]["metadata"]["annotations"]
    assert any(a in annotations for a in IDENTITY_ANNOTATIONS), annotations
    old = [d for d in _docs(OLD / "prod.yaml") if d.get("kind") == "Cluster"]
    assert "serviceAccountTemplate" not in old[0]["spec"]


def _docs(path: Path) -> list[dict[str, object]]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_prerequisites_match_the_crds() -> None:
    """docs/deploy.md names the exact versions whose CRDs the manifests are validated against."""
    from tests.deploy.conftest import CRDS, REPO

    docs = (REPO / "docs" / "deploy.md").read_text()
    section = docs.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    if not CRDS.is_dir():
        pytest.skip(f"{CRDS} absent")
    for folder in sorted(p.name for p in CRDS.iterdir() if p.is_dir()):
        version = folder.rsplit("-", 1)[1].removeprefix("v")
        assert version in section, f"docs/deploy.md prerequisites lack {folder}"
    assert "healthstack smoke --base-url" in section


def test_production_database_is_timescaledb_preloaded_and_pinned(
    rendered: dict[str, Rendered],
) -> None:
    """Production runs the seed's TimescaleDB like staging (issue 14, item 6)."""
    import re

    spec = rendered["prod"].one("Cluster", "postgres")["spec"]
    assert re.fullmatch(r"[\w./-]+timescaledb@sha256:[0-9a-f]{64}", spec["imageName"])
    assert "timescaledb" in spec["postgresql"]["shared_preload_libraries"]
    dockerfile = (OLD.parents[2] / "deploy/images/cnpg-timescaledb/Dockerfile").read_text()
    assert "timescaledb-2-postgresql-16" in dockerfile
