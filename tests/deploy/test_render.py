"""Both overlays render on a fresh clone (no secret files) with every object the seed describes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from tests.deploy.conftest import DEPLOY, REPO, Rendered

# The seed's objects (by kind and name) that every environment must contain.
SEED_OBJECTS = [
    ("ConfigMap", "healthcare-app-config"),
    ("Deployment", "healthcare-app"),
    ("Service", "healthcare-service"),
    ("HorizontalPodAutoscaler", "healthcare-app-hpa"),
    ("Gateway", "healthcare-gateway"),
    ("VirtualService", "healthcare-routes"),
    ("NetworkPolicy", "healthcare-app"),
    ("ServiceMonitor", "healthcare-app-metrics"),
    ("PodMonitor", "istio-sidecar-metrics"),
]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
CLUSTER_SCOPED = {"Namespace"}


def test_renders_quickly(overlay: Rendered) -> None:
    assert overlay.docs
    assert overlay.seconds < 5, f"{overlay.env} took {overlay.seconds:.2f}s to render"


def test_has_every_seed_object(overlay: Rendered) -> None:
    for kind, name in SEED_OBJECTS:
        overlay.one(kind, name)
    assert overlay.find("Schedule"), "the Velero Schedule is missing"


def test_renders_without_secret_files_and_commits_no_secret(overlay: Rendered) -> None:
    assert not overlay.find("Secret"), "Secrets come from `secrets apply` or ExternalSecrets"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"deploy/overlays/{overlay.env}/secrets.env"], cwd=REPO,
        check=False,
    )  # fmt: skip
    assert ignored.returncode == 0, "secrets.env must be gitignored"


def test_namespace_is_restricted_and_injected(overlay: Rendered) -> None:
    (namespace,) = overlay.find("Namespace")
    assert namespace["metadata"]["name"] == f"healthcare-{overlay.env}"
    labels = namespace["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_every_namespaced_object_is_in_its_namespace(overlay: Rendered) -> None:
    for doc in overlay.docs:
        meta = doc["metadata"]
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta
        elif doc["kind"] == "Schedule":  # Velero only reads Schedules in its own namespace
            assert meta["namespace"] == "velero"
            assert doc["spec"]["template"]["includedNamespaces"] == [f"healthcare-{overlay.env}"]
        else:
            assert meta["namespace"] == f"healthcare-{overlay.env}", f"{doc['kind']}/{meta['name']}"


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_images_are_pinned_by_digest(overlay: Rendered) -> None:
    for doc in overlay.find("Deployment") + overlay.find("StatefulSet"):
        for container in _containers(doc):
            assert DIGEST.search(container["image"]), f"{container['name']}: {container['image']}"


def test_database_component_per_environment(rendered: dict[str, Rendered]) -> None:
    prod, staging = rendered["prod"], rendered["staging"]
    cluster = prod.one("Cluster", "postgres")["spec"]
    assert cluster["instances"] == 3
    assert cluster["postgresql"]["synchronous"]["number"] >= 1
    assert cluster["backup"]["barmanObjectStore"]["wal"]  # continuous WAL archiving
    assert prod.one("ScheduledBackup", "postgres-daily")["spec"]["cluster"]["name"] == "postgres"
    assert not prod.find("StatefulSet")
    assert staging.one("StatefulSet", "postgres")["spec"]["replicas"] == 1
    assert staging.one("Service", "postgres-service")["spec"]["clusterIP"] == "None"
    assert not staging.find("Cluster")
    assert prod.find("ExternalSecret")
    assert not staging.find("ExternalSecret")


@pytest.mark.parametrize(
    "component",
    sorted(p.name for p in (DEPLOY / "components").iterdir() if p.is_dir()),
)
def test_each_component_is_a_documented_component(component: str) -> None:
    folder = DEPLOY / "components" / component
    assert "kind: Component" in (folder / "kustomization.yaml").read_text()
    assert len((folder / "README.md").read_text().strip()) > 200


def test_overlays_hold_patches_only() -> None:
    for overlay_dir in (DEPLOY / "overlays").iterdir():
        if not overlay_dir.is_dir():
            continue
        text = (overlay_dir / "kustomization.yaml").read_text()
        resources = re.search(r"^resources:\n((?:  - .*\n)+)", text, re.MULTILINE)
        assert resources is not None
        assert resources.group(1).strip() == "- ../../base", f"{overlay_dir.name}: {resources}"
        assert "secretGenerator" not in text


def test_components_listed() -> None:
    expected = {"istio", "network-policies", "monitoring", "postgres", "postgres-ha", "velero",
                "external-secrets"}  # fmt: skip
    assert expected <= {p.name for p in Path(DEPLOY / "components").iterdir()}
