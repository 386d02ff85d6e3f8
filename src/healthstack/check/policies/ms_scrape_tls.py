"""HS-MS-005: ServiceMonitors and PodMonitors scraping sidecar pods under STRICT mTLS use
Istio's certificates.

Prometheus runs outside the mesh; under STRICT the sidecar rejects its plaintext scrape of an
application port. Scrapes work over https with the Istio certificates (tlsConfig) or through the
sidecar's own plaintext ports (15020 merged metrics, 15090 Envoy stats).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation, container_port_names
from healthstack.check.policies.istio import injected, mtls_mode
from healthstack.check.selectors import matches

SIDECAR_PLAINTEXT_PORTS = {15020, 15090}
Target = tuple[dict[str, Any], Workload, Any]


def _target_port(svc: K8sObject, ep: dict[str, Any]) -> Any:
    port = next((p for p in svc.spec.get("ports") or [] if p.get("name") == ep.get("port")), None)
    return None if port is None else port.get("targetPort", port.get("port"))


def _uses_tls(ep: dict[str, Any]) -> bool:
    tls = ep.get("tlsConfig") or {}
    return ep.get("scheme") == "https" and bool(tls.get("certFile") or tls.get("cert"))


def _namespaces(mon: K8sObject) -> list[str]:
    return (mon.spec.get("namespaceSelector") or {}).get("matchNames") or [mon.namespace]


def _service_targets(ctx: Context, mon: K8sObject) -> Iterator[Target]:
    """(endpoint, pod, port name or number) a ServiceMonitor scrapes, through its Services."""
    services = [
        s
        for s in ctx.inv.of_kind("Service")
        if s.namespace in _namespaces(mon) and matches(mon.spec.get("selector"), s.labels)
    ]
    for ep in mon.spec.get("endpoints") or []:
        for svc in services:
            for w in ctx.inv.pods_selected(svc.namespace, svc.spec.get("selector"), True):
                yield ep, w, _target_port(svc, ep)


def _pod_targets(ctx: Context, mon: K8sObject) -> Iterator[Target]:
    """(endpoint, pod, port name or number) a PodMonitor scrapes: it selects pods directly."""
    for ep in mon.spec.get("podMetricsEndpoints") or []:
        port = ep.get("port", ep.get("portNumber", ep.get("targetPort")))
        for ns in _namespaces(mon):
            for w in ctx.inv.pods_selected(ns, mon.spec.get("selector")):
                yield ep, w, port


def _endpoint_path(mon: K8sObject, ep: dict[str, Any]) -> str:
    key = "endpoints" if mon.kind == "ServiceMonitor" else "podMetricsEndpoints"
    index = next((i for i, e in enumerate(mon.spec.get(key) or []) if e is ep), 0)
    return f"spec.{key}.{index}"


def evaluate(ctx: Context) -> Iterator[Violation]:
    monitors = [(m, _service_targets) for m in ctx.inv.of_kind("ServiceMonitor")]
    monitors += [(m, _pod_targets) for m in ctx.inv.of_kind("PodMonitor")]
    for mon, targets in monitors:
        for ep, w, target in targets(ctx, mon):
            if _uses_tls(ep):
                continue
            number = container_port_names(w.containers).get(str(target), target)
            strict = injected(w) and mtls_mode(ctx.inv, w) == "STRICT"
            if strict and number not in SIDECAR_PLAINTEXT_PORTS:
                yield Violation(
                    mon,
                    f"endpoint port {ep.get('port', target)!r} scrapes {w.key}:{number} over "
                    "plain HTTP under STRICT mTLS: the sidecar rejects the scrape",
                    _endpoint_path(mon, ep),
                )


CHECK = Check(
    id="HS-MS-005",
    title="Metrics scrapes under STRICT mTLS use Istio certificates",
    severity=Severity.MEDIUM,
    scope=("ServiceMonitor", "PodMonitor", "PeerAuthentication"),
    references=("HIPAA 164.312(b)", "HIPAA 164.312(e)(1)", "NIST SP 800-53 SI-4"),
    remediation="Scrape with scheme: https and tlsConfig pointing at the Istio certificates "
    "Prometheus mounts (/etc/prom-certs), or scrape the sidecar's merged metrics on 15020.",
    evaluate=evaluate,
    family="service mesh",
)
