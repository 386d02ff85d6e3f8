"""Tracing is wired: endpoint, egress, Sidecar host, mesh Telemetry (issue 14, item 8)."""

from __future__ import annotations

from tests.deploy.conftest import Rendered

COLLECTOR = "otel-collector.observability.svc.cluster.local"


def test_service_exports_to_the_collector(overlay: Rendered) -> None:
    config = overlay.one("ConfigMap", "healthcare-app-config")["data"]
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{COLLECTOR}:4318"


def test_network_policy_and_sidecar_let_spans_out(overlay: Rendered) -> None:
    policy = overlay.one("NetworkPolicy", "healthcare-app-tracing")
    (rule,) = policy["spec"]["egress"]
    assert {p["port"] for p in rule["ports"]} == {4317, 4318}
    peer = rule["to"][0]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"
    }
    hosts = overlay.one("Sidecar", "default")["spec"]["egress"][0]["hosts"]
    assert f"observability/{COLLECTOR}" in hosts


def test_mesh_spans_are_reported(overlay: Rendered) -> None:
    telemetry = overlay.one("Telemetry", "mesh-tracing")
    (tracing,) = telemetry["spec"]["tracing"]
    assert tracing["providers"] == [{"name": "otel-tracing"}]
    assert 0 < tracing["randomSamplingPercentage"] <= 100
