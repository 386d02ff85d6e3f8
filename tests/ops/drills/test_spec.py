"""Reading the rollout parameters from manifests: the prod overlay, the seed, and edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthstack.errors import HealthstackError
from healthstack.ops.drills.spec import (
    RolloutSpec,
    load_documents,
    load_spec,
    spec_from_documents,
)

REPO = Path(__file__).resolve().parents[3]
SEED = (REPO / ".." / "shared" / "seed" / "manifests").resolve()

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 4
  strategy: {rollingUpdate: {maxSurge: 50%, maxUnavailable: 30%}}
  template:
    spec:
      terminationGracePeriodSeconds: 40
      containers:
        - name: app
          env: [{name: SHUTDOWN_DRAIN_SECONDS, value: "7"}]
          readinessProbe: {httpGet: {path: /health/ready, port: 4000}, periodSeconds: 2}
          lifecycle: {preStop: {exec: {command: ["/bin/sh", "-c", "sleep 12"]}}}
"""


def _spec(text: str) -> RolloutSpec:
    return spec_from_documents(load_documents(text, "test.yaml"), "test.yaml")


def test_prod_overlay_takes_replicas_from_the_hpa() -> None:
    spec = load_spec(kustomize=REPO / "deploy" / "overlays" / "prod")
    # The prod Deployment leaves replicas to its HPA: the drill must use minReplicas.
    assert spec.replicas >= 2
    assert (spec.max_surge, spec.max_unavailable) == (1, 0)
    assert spec.prestop_seconds > 0
    assert spec.grace_seconds >= spec.prestop_seconds + spec.drain_seconds


def test_explicit_fields_percentages_and_exec_prestop() -> None:
    spec = _spec(DEPLOYMENT)
    assert spec.replicas == 4
    assert spec.max_surge == 2  # 50% of 4, rounded up
    assert spec.max_unavailable == 1  # 30% of 4, rounded down
    assert spec.prestop_seconds == 12
    assert spec.drain_seconds == 7
    assert spec.failure_threshold == 3  # the Kubernetes default


def test_scaling_keeps_real_slack_only() -> None:
    spec = _spec(DEPLOYMENT).scaled(0.1)
    assert spec.prestop_seconds == pytest.approx(1.2)
    assert spec.probe_period == pytest.approx(0.2)
    # grace 40 leaves 21 s after preStop + drain; the scaled one keeps 5 s of it for process exit.
    assert spec.grace_seconds == pytest.approx(1.9 + 5)
    tight = _spec(DEPLOYMENT.replace("terminationGracePeriodSeconds: 40",
                                     "terminationGracePeriodSeconds: 19"))  # fmt: skip
    assert tight.scaled(0.1).grace_seconds == pytest.approx(1.9)


def test_only_the_db_outage_drill_scales_the_database_timeouts() -> None:
    """docs/drills.md: other drills keep the deployed timeouts; scaled ones never go below 1 s."""
    deployed = _spec(DEPLOYMENT)
    scaled = deployed.scaled(0.05)
    assert (scaled.statement_timeout, scaled.connect_timeout) == (
        deployed.statement_timeout, deployed.connect_timeout)  # fmt: skip
    outage = scaled.database_scaled(0.05)
    assert outage.statement_timeout == max(1.0, deployed.statement_timeout * 0.05)
    assert outage.connect_timeout == 1.0  # the floor: 5 s x 0.05 would be 0.25 s
    assert outage.prestop_seconds == scaled.prestop_seconds  # nothing else changes


def test_no_deployment_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(HealthstackError, match="expected one Deployment"):
        load_spec(manifests=path)


@pytest.mark.skipif(not SEED.exists(), reason=f"seed manifests not found at {SEED}")
def test_seed_deployment() -> None:
    docs = []
    for name in ("deployment.yaml", "hpa.yaml", "configmap.yaml"):
        docs += load_documents((SEED / name).read_text(), name)
    spec = spec_from_documents(docs, "seed")
    assert (spec.replicas, spec.prestop_seconds, spec.grace_seconds) == (3, 15, 30)
