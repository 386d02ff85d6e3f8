"""Every rendered object is valid for Kubernetes 1.31 (strict) or for its upstream CRD."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from tests.deploy.conftest import Rendered

from healthstack.check.model import K8sObject
from healthstack.check.schema import validate_objects


def _objects(overlay: Rendered) -> list[K8sObject]:
    return [K8sObject(doc, f"deploy/overlays/{overlay.env}", 1) for doc in overlay.docs]


def _messages(objects: list[K8sObject], crds: Path | None) -> list[str]:
    return [f"{f.object_ref}: {f.message}" for f in validate_objects(objects, crds)]


def test_builtin_kinds_strict_1_31(overlay: Rendered) -> None:
    builtin = [o for o in _objects(overlay) if "." not in o.api_version.split("/")[0]
               or o.api_version.split("/")[0].endswith(".k8s.io")]  # fmt: skip
    assert len(builtin) >= 12
    assert _messages(builtin, None) == []


@pytest.mark.needs_crds
def test_custom_resources_match_upstream_crds(overlay: Rendered, crds: Path) -> None:
    custom = [o for o in _objects(overlay) if o.api_version.split("/")[0].count(".") >= 1
              and not o.api_version.split("/")[0].endswith(".k8s.io")]  # fmt: skip
    kinds = {o.kind for o in custom}
    assert {"Gateway", "VirtualService", "PrometheusRule", "Schedule"} <= kinds
    assert _messages(custom, crds) == []


@pytest.mark.needs_crds
def test_validation_is_not_vacuous(rendered: dict[str, Rendered], crds: Path) -> None:
    """A misspelled field in a built-in kind and in a custom resource is reported."""
    deployment = copy.deepcopy(rendered["prod"].one("Deployment", "healthcare-app"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    cluster = copy.deepcopy(rendered["prod"].one("Cluster", "postgres"))
    cluster["spec"]["instance"] = 3
    broken = [K8sObject(deployment, "x", 1), K8sObject(cluster, "x", 1)]
    messages = _messages(broken, crds)
    assert any("readOnlyRootFileSystem" in m for m in messages), messages
    assert any("instance" in m for m in messages), messages
