"""The optional request-rate component: the prod overlay with it renders a valid HPA that keeps
CPU and reads the metric the documented prometheus-adapter rule serves (issue 14 item 10)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from tests.deploy.conftest import DEPLOY, KUBECTL

from healthstack.check.model import K8sObject
from healthstack.check.schema import validate_objects

COMPONENT = DEPLOY / "components" / "hpa-request-rate"


def test_prod_with_request_rate_scales_on_cpu_and_the_adapter_metric(tmp_path: Path) -> None:
    # kustomize refuses absolute roots: name the overlay and component relative to tmp_path.
    prod, component = (
        os.path.relpath(p, tmp_path) for p in (DEPLOY / "overlays" / "prod", COMPONENT)
    )
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {prod}\ncomponents:\n  - {component}\n"
    )
    proc = subprocess.run([str(KUBECTL), "kustomize", str(tmp_path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    by_type = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert by_type["Resource"]["resource"]["name"] == "cpu"  # CPU stays
    assert "memory" not in proc.stdout.split("kind: HorizontalPodAutoscaler", 1)[1].split("---")[0]
    pods = by_type["Pods"]["pods"]
    rules = yaml.safe_load((COMPONENT / "adapter-rules.yaml").read_text())["rules"]["custom"]
    assert pods["metric"]["name"] in {rule["name"]["as"] for rule in rules}
    assert pods["target"] == {"type": "AverageValue", "averageValue": "300"}
    # The counter the rule reads is the service's own (healthstack.service.metrics).
    assert all(rule["seriesQuery"].startswith("http_requests_total{") for rule in rules)
    objects = [K8sObject(hpa, str(tmp_path), 1)]
    assert [f.message for f in validate_objects(objects, None)] == []
