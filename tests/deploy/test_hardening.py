"""Our manifests are free of the seed's defects (issue 5, section 3).

``healthstack check`` owns the tests that find each defect on the seed; these pin the fixes here,
in the terms the deployment itself is written in.
"""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.conftest import Rendered

PRESTOP_SECONDS = 15
SAFE_RETRY = {"connect-failure", "refused-stream", "unavailable", "cancelled",
              "reset-before-request"}  # fmt: skip
PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}


def _workloads(overlay: Rendered) -> list[dict[str, Any]]:
    return overlay.find("Deployment") + overlay.find("StatefulSet")


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


def test_every_container_is_hardened(overlay: Rendered) -> None:
    for workload in _workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in pod.get("initContainers", []) + pod["containers"]:
            ctx = container["securityContext"]
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert ctx["runAsNonRoot"] is True, where
            assert any(m["mountPath"] == "/tmp" and m["name"] in tmp
                       for m in container["volumeMounts"]), where  # fmt: skip
            assert "limits" in container["resources"], where
            if container["name"] != "migrate":
                assert {"livenessProbe", "readinessProbe", "startupProbe"} <= set(container), where


def test_app_runs_as_high_uid(overlay: Rendered) -> None:
    pod = overlay.one("Deployment", "healthcare-app")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001


def test_hpa_owns_the_scale(overlay: Rendered) -> None:
    hpa = overlay.one("HorizontalPodAutoscaler", "healthcare-app-hpa")["spec"]
    assert "replicas" not in overlay.one("Deployment", hpa["scaleTargetRef"]["name"])["spec"]
    assert hpa["minReplicas"] >= 2


def test_disruption_budget_and_spread(overlay: Rendered) -> None:
    pdb = overlay.one("PodDisruptionBudget", "healthcare-app-pdb")["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["selector"]["matchLabels"] == {"app": "healthcare"}
    spread = overlay.one("Deployment", "healthcare-app")["spec"]["template"]["spec"][
        "topologySpreadConstraints"]  # fmt: skip
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname",
                                                  "topology.kubernetes.io/zone"}  # fmt: skip


def test_grace_covers_prestop_drain_and_longest_request(overlay: Rendered) -> None:
    pod = overlay.one("Deployment", "healthcare-app")["spec"]["template"]["spec"]
    app = pod["containers"][0]
    assert app["lifecycle"]["preStop"]["sleep"]["seconds"] == PRESTOP_SECONDS
    drain = int(overlay.one("ConfigMap", "healthcare-app-config")["data"]["SHUTDOWN_DRAIN_SECONDS"])
    route = overlay.one("VirtualService", "healthcare-routes")["spec"]["http"][0]
    longest = _seconds(route["timeout"])
    assert pod["terminationGracePeriodSeconds"] >= PRESTOP_SECONDS + drain + longest + 10
    assert "initialDelaySeconds" not in app["livenessProbe"]  # the startupProbe gates it


def test_retries_only_on_safe_conditions(overlay: Rendered) -> None:
    for route in overlay.one("VirtualService", "healthcare-routes")["spec"]["http"]:
        conditions = set(route["retries"]["retryOn"].split(","))
        assert conditions <= SAFE_RETRY, conditions - SAFE_RETRY


def test_mesh_is_strict_and_deny_by_default(overlay: Rendered) -> None:
    assert overlay.one("PeerAuthentication", "default")["spec"]["mtls"]["mode"] == "STRICT"
    assert overlay.one("AuthorizationPolicy", "allow-nothing")["spec"] == {}
    ingress = overlay.one("AuthorizationPolicy", "healthcare-app-from-ingress")["spec"]
    assert ingress["rules"][0]["to"][0]["operation"]["paths"] == ["/api/*"]
    metrics = overlay.one("AuthorizationPolicy", "healthcare-app-from-prometheus")["spec"]
    assert metrics["rules"][0]["to"][0]["operation"]["paths"] == ["/metrics"]
    rule = overlay.one("DestinationRule", "healthcare-service")["spec"]["trafficPolicy"]
    assert rule["tls"]["mode"] == "ISTIO_MUTUAL"
    sidecar = overlay.one("Sidecar", "default")["spec"]
    assert sidecar["outboundTrafficPolicy"]["mode"] == "REGISTRY_ONLY"


def _namespace_selectors(overlay: Rendered) -> list[dict[str, Any]]:
    peers = [peer for policy in overlay.find("NetworkPolicy")
             for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
             for peer in rule.get("from", []) + rule.get("to", [])]  # fmt: skip
    return [peer["namespaceSelector"] for peer in peers if "namespaceSelector" in peer]


def test_network_policies_select_real_namespace_labels(overlay: Rendered) -> None:
    """Only the label the API server sets; never `name:` (unset) nor `{}` (every namespace)."""
    selectors = _namespace_selectors(overlay)
    assert selectors
    for selector in selectors:
        assert set(selector) == {"matchLabels"}, selector
        assert set(selector["matchLabels"]) == {"kubernetes.io/metadata.name"}, selector


def _egress_ports(policy: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for r in policy["spec"]["egress"] for p in r["ports"]}


def test_app_egress_dns_istiod_and_public_https(overlay: Rendered) -> None:
    policy = overlay.one("NetworkPolicy", "healthcare-app")
    assert {("UDP", 53), ("TCP", 53), ("TCP", 15012), ("TCP", 5432)} <= _egress_ports(policy)
    external = [r for r in policy["spec"]["egress"] if any("ipBlock" in t for t in r["to"])]
    assert len(external) == 1
    block = external[0]["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    assert set(block["except"]) >= PRIVATE
    entry = overlay.one("ServiceEntry", "external-https")["spec"]
    assert entry["location"] == "MESH_EXTERNAL"
    assert "api.openai.com" in entry["hosts"]


def test_prometheus_reaches_metrics_and_envoy(overlay: Rendered) -> None:
    policy = overlay.one("NetworkPolicy", "healthcare-app")["spec"]
    ports = {p["port"] for r in policy["ingress"] for p in r["ports"]
             if r["from"][0]["namespaceSelector"]["matchLabels"]
             == {"kubernetes.io/metadata.name": "monitoring"}}  # fmt: skip
    assert ports == {4000, 15090}


def test_postgres_only_from_the_app(overlay: Rendered) -> None:
    assert overlay.one("NetworkPolicy", "default-deny")["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}  # fmt: skip
    ingress = overlay.one("NetworkPolicy", "postgres")["spec"]["ingress"]
    # The service, and the audit-anchor job that reads the trail as the service role.
    assert ingress == [{"from": [{"podSelector": {"matchLabels": {"app": "healthcare"}}},
                                 {"podSelector": {"matchLabels": {"app": "audit-anchor"}}}],
                        "ports": [{"protocol": "TCP", "port": 5432}]}]  # fmt: skip


def test_the_audit_anchor_job_is_hardened_and_completes_in_the_mesh(overlay: Rendered) -> None:
    job = overlay.one("CronJob", "audit-anchor")
    pod = job["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    container = spec["containers"][0]
    assert container["command"] == ["healthstack", "audit", "anchor", "--out", "/anchors"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    database = next(v for v in spec["volumes"] if v["name"] == "database")
    assert database["secret"]["items"] == [{"key": "DATABASE_URL", "path": "DATABASE_URL"}]


def test_slo_alerts(overlay: Rendered) -> None:
    rules = [r for g in overlay.one("PrometheusRule", "healthstack-slo")["spec"]["groups"]
             for r in g["rules"]]  # fmt: skip
    exprs = " ".join(r["expr"] for r in rules)
    for long, short, factor in (("1h", "5m", "14.4"), ("6h", "30m", "6"), ("1d", "2h", "3"),
                                ("3d", "6h", "1")):  # fmt: skip
        assert f"ratio_rate{long} > ({factor} * 0.0005)" in exprs
        assert f"ratio_rate{short} > ({factor} * 0.0005)" in exprs
    for metric in ('status=~"5.."', "http_request_duration_seconds_bucket",
                   "healthstack_break_glass_total", "healthstack_audit_write_failures_total",
                   "healthstack_db_ready"):  # fmt: skip
        assert metric in exprs, metric
    dashboard = overlay.one("ConfigMap", "healthstack-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_velero_daily_with_consistent_dump(overlay: Rendered) -> None:
    (schedule,) = overlay.find("Schedule")
    assert schedule["spec"]["schedule"] == "0 2 * * *"
    assert schedule["spec"]["template"]["ttl"] == "720h0m0s"
    hooks = schedule["spec"]["template"]["hooks"]["resources"]
    commands = [" ".join(h["pre"][0]["exec"]["command"]) for h in hooks]
    assert all("pg_dump" in c for c in commands)
