"""Schema validation: strict Kubernetes 1.31 and CRD schemas, through the public function."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from healthstack.check.loader import parse_stream
from healthstack.check.model import K8sObject
from healthstack.check.schema import validate_objects

from .conftest import FIXTURES

DEPLOYMENT = parse_stream((FIXTURES / "HS-WL-004/pass/objects.yaml").read_text("utf-8"), "d")[0]
SERVICE_MONITOR = K8sObject(
    {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "m", "namespace": "demo"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    },
    "m.yaml",
    3,
)


def _with(obj: K8sObject, path: list[str | int], value: object) -> K8sObject:
    doc = copy.deepcopy(obj.doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return K8sObject(doc, obj.file, obj.line)


def test_valid_kubernetes_object_passes() -> None:
    assert validate_objects([DEPLOYMENT], None) == []


def test_unknown_field_is_an_error_with_its_path() -> None:
    bad = _with(DEPLOYMENT, ["spec", "template", "spec", "containers", 0, "imagePolicy"], "x")
    [finding] = validate_objects([bad], None)
    assert finding.check_id == "HS-SC-001"
    assert "spec.template.spec.containers.0" in finding.message
    assert "imagePolicy" in finding.message


def test_wrong_type_is_an_error() -> None:
    bad = _with(DEPLOYMENT, ["spec", "replicas"], "three")
    assert "spec.replicas" in validate_objects([bad], None)[0].message


def test_unknown_builtin_kind_is_reported() -> None:
    obj = K8sObject(
        {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}, "x.yaml", 1
    )
    assert "no schema" in validate_objects([obj], None)[0].message


def test_custom_resource_is_skipped_without_crds() -> None:
    assert validate_objects([SERVICE_MONITOR], None) == []


@pytest.mark.needs_crds
def test_custom_resource_validates_against_its_crd(crds_dir: Path) -> None:
    assert validate_objects([SERVICE_MONITOR], crds_dir) == []
    bad = _with(SERVICE_MONITOR, ["spec", "endpoints", 0, "scrapeEvery"], "30s")
    [finding] = validate_objects([bad], crds_dir)
    assert "spec.endpoints.0" in finding.message
    assert "scrapeEvery" in finding.message
    assert (finding.file, finding.line) == ("m.yaml", 3)


@pytest.mark.needs_crds
def test_preserve_unknown_fields_is_respected(crds_dir: Path) -> None:
    """Istio's specs are typed; Velero hook exec commands are plain string lists."""
    vs = K8sObject(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "v"},
            "spec": {"hosts": ["a"], "htp": []},
        },
        "v",
        1,
    )
    assert "htp" in validate_objects([vs], crds_dir)[0].message


@pytest.mark.needs_crds
def test_unknown_custom_kind_is_reported_with_crds(crds_dir: Path) -> None:
    obj = K8sObject(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, "w", 1
    )
    assert "given CRDs" in validate_objects([obj], crds_dir)[0].message
