"""Issue 17: SARIF regions point at the offending field (not the object's first line) for the
container, env, gateway, egress, selector, schedule and alert findings; at the nearest existing
parent when the field is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from healthstack.cli import main

STACK = """\
apiVersion: v1
kind: Namespace
metadata:
  name: app
  labels:
    istio-injection: enabled
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: app
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
      annotations:
        sidecar.istio.io/inject: "false"
    spec:
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: DoNotSchedule
          labelSelector:
            matchLabels:
              app: webapp
      containers:
        - name: web
          image: registry.example/web:1.0
          securityContext:
            capabilities:
              add: [NET_ADMIN]
          env:
            - name: LOG_LEVEL
              value: info
            - name: API_TOKEN
              valueFrom:
                secretKeyRef: {name: web, key: token}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: app
spec:
  selector:
    app: web
  servers:
    - port:
        number: 443
        name: https
        protocol: HTTPS
      hosts: ["fhir.example.com"]
      tls:
        mode: SIMPLE
        credentialName: fhir-tls
        minProtocolVersion: TLSV1_0
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: out
  namespace: app
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
      ports:
        - port: 443
---
apiVersion: velero.io/v1
kind: Schedule
metadata:
  name: daily
  namespace: velero
spec:
  paused: true
  schedule: "0 2 * * *"
  template:
    ttl: 720h
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: slo
  namespace: app
spec:
  groups:
    - name: slo
      rules:
        - record: errors:ratio_rate1h
          expr: "0"
        - alert: Burn
          expr: errors:ratio_rate1h > (14.4 * 0.005)
          labels:
            slo: availability-99.95
"""

# rule -> the text of the line its region must start on
EXPECTED = {
    "HS-PS-001": "securityContext:",
    "HS-WL-004": "image: registry.example/web:1.0",
    "HS-WL-005": "- name: API_TOKEN",
    "HS-WL-002": "- name: web",  # resources absent: the container that lacks them
    "HS-RI-002": "labelSelector:",
    "HS-MS-003": "annotations:",
    "HS-ZT-008": "minProtocolVersion: TLSV1_0",
    "HS-NP-002": "- ipBlock:",
    "HS-DH-003": "paused: true",
    "HS-SLO-001": "expr: errors:ratio_rate1h > (14.4 * 0.005)",
}


def test_regions_point_at_the_offending_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK, "utf-8")
    main(["check", str(stack), "--format", "sarif"])
    results = json.loads(capsys.readouterr().out)["runs"][0]["results"]
    lines = STACK.splitlines()
    starts: dict[str, set[str]] = {}
    for r in results:
        line = r["locations"][0]["physicalLocation"]["region"]["startLine"]
        starts.setdefault(r["ruleId"], set()).add(lines[line - 1].strip())
    for rule, text in EXPECTED.items():
        assert text in starts.get(rule, set()), (rule, starts.get(rule))
