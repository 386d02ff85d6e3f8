"""Issue 17: traffic.sidecar.istio.io annotations that route a PHI pod's traffic around its
sidecar (HS-MS-009) are reported; the defaults ("*") and pods outside the mesh are not."""

from __future__ import annotations

import pytest

from .test_semantics import findings

POD = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: app}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata:
      labels: {{app: api{inject}}}
      annotations: {{{annotations}}}
    spec:
      containers: [{{name: api, image: x, ports: [{{containerPort: 8080}}, {{containerPort: 9090}}]}}]
"""


def pod(annotations: str, inject: str = "") -> str:
    return POD.format(annotations=annotations, inject=inject)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ('excludeInboundPorts: "9090"', "inbound port(s) 9090 skip STRICT mTLS"),
        ('excludeOutboundPorts: "5432"', "outbound port(s) 5432 leave without mTLS"),
        ('excludeOutboundIPRanges: "10.0.0.0/8"', "outbound range(s) 10.0.0.0/8 leave"),
        ('includeOutboundIPRanges: "10.96.0.0/12"', "only 10.96.0.0/12 are intercepted"),
        ('includeInboundPorts: "8080"', "includeInboundPorts leaves out 9090"),
    ],
)
def test_annotations_that_bypass_the_sidecar_are_reported(annotation: str, message: str) -> None:
    [found] = findings(pod(f"traffic.sidecar.istio.io/{annotation}"), "HS-MS-009")
    assert found.startswith("Deployment/app/api: app/api ")
    assert message in found


def test_defaults_and_pods_outside_the_mesh_pass() -> None:
    everything = 'traffic.sidecar.istio.io/includeOutboundIPRanges: "*", '
    everything += 'traffic.sidecar.istio.io/includeInboundPorts: "8080,9090"'
    assert findings(pod(everything), "HS-MS-009") == []
    outside = pod(
        'traffic.sidecar.istio.io/excludeOutboundPorts: "5432"',
        ', sidecar.istio.io/inject: "false"',
    )
    assert findings(outside, "HS-MS-009") == []
