"""The rollout drill retries a refused connection exactly when the VirtualService route would."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthstack.ops.drills.haproxy import mesh_retries, render_config
from healthstack.ops.drills.mesh import RetryPolicy, retry_policy
from healthstack.ops.drills.spec import RolloutSpec, load_documents, load_spec

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = """
kind: Service
metadata: {name: web}
spec: {selector: {app: web}}
---
kind: VirtualService
metadata: {name: routes}
spec:
  http:
    - name: health
      match: [{uri: {prefix: /health}}]
      route: [{destination: {host: web.ns.svc.cluster.local}}]
    - name: api
      match: [{uri: {prefix: /api/}}]
      retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "gateway-error,connect-failure"}
      route: [{destination: {host: web}}]
"""


def test_prod_route_does_not_retry_what_a_sidecar_answers_for_a_refused_connection() -> None:
    spec = load_spec(kustomize=REPO / "deploy" / "overlays" / "prod")
    assert spec.retry.source == "VirtualService healthcare-routes, route api"
    assert spec.retry.attempts == 2
    assert spec.retry.per_try_timeout == 10.0
    assert not spec.retry.retries_refused_connection
    assert mesh_retries(spec) == ("none", 0)


def test_api_route_is_preferred_and_its_retries_read() -> None:
    policy = retry_policy(load_documents(MANIFESTS, "m.yaml"), {"app": "web"})
    assert policy == RetryPolicy(3, 0.5, "gateway-error,connect-failure",
                                 "VirtualService routes, route api")  # fmt: skip
    assert policy.retries_refused_connection


def test_no_route_means_istio_default_which_retries_503() -> None:
    policy = retry_policy(load_documents(MANIFESTS, "m.yaml"), {"app": "other"})
    assert policy.source.startswith("Istio default")
    assert policy.retries_refused_connection


@pytest.mark.parametrize(
    ("retry_on", "attempts", "retried"),
    [
        ("connect-failure,refused-stream,reset-before-request", 2, False),
        ("5xx", 2, True),
        ("503", 1, True),
        ("gateway-error", 0, False),
    ],
)
def test_which_retry_on_retries_a_refused_connection(
    retry_on: str, attempts: int, retried: bool
) -> None:
    assert RetryPolicy(attempts, None, retry_on).retries_refused_connection is retried


def test_haproxy_gets_the_route_attempts_and_per_try_timeout(tmp_path: Path) -> None:
    spec = RolloutSpec(name="app", replicas=2, max_surge=1, max_unavailable=0, probe_period=5,
                       probe_timeout=3, failure_threshold=2, success_threshold=1,
                       prestop_seconds=15, grace_seconds=65, drain_seconds=5,
                       retry=RetryPolicy(3, 0.5, "5xx"))  # fmt: skip
    config = render_config(spec, 40000, [], tmp_path / "s.sock", *mesh_retries(spec))
    assert "retries 3\n" in config
    assert "retry-on conn-failure\n" in config
    assert "timeout server 500\n" in config
