"""HS-MS-005: ServiceMonitors scraping sidecar pods under STRICT mTLS use Istio's certificates.

Prometheus runs outside the mesh; under STRICT the sidecar rejects its plaintext scrape of an
application port. Scrapes work over https with the Istio certificates (tlsConfig) or through the
sidecar's own plaintext ports (15020 merged metrics, 15090 Envoy stats).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation, container_port_names
from healthstack.check.policies.istio import injected, mtls_mode
from healthstack.check.selectors import matches

SIDECAR_PLAINTEXT_PORTS = {15020, 15090}


def _target_port(svc: K8sObject, ep: dict[str, Any]) -> Any:
    port = next((p for p in svc.spec.get("ports") or [] if p.get("name") == ep.get("port")), None)
    return None if port is None else port.get("targetPort", port.get("port"))


def _uses_tls(ep: dict[str, Any]) -> bool:
    tls = ep.get("tlsConfig") or {}
    return ep.get("scheme") == "https" and bool(tls.get("certFile") or tls.get("cert"))


def evaluate(ctx: Context) -> Iterator[Violation]:
    for mon in ctx.inv.of_kind("ServiceMonitor"):
        namespaces = (mon.spec.get("namespaceSelector") or {}).get("matchNames") or [mon.namespace]
        services = [
            s
            for s in ctx.inv.of_kind("Service")
            if s.namespace in namespaces and matches(mon.spec.get("selector"), s.labels)
        ]
        for ep in mon.spec.get("endpoints") or []:
            if _uses_tls(ep):
                continue
            for svc in services:
                target = _target_port(svc, ep)
                for w in ctx.inv.pods_selected(svc.namespace, svc.spec.get("selector"), True):
                    number = container_port_names(w.containers).get(str(target), target)
                    strict = injected(w) and mtls_mode(ctx.inv, w) == "STRICT"
                    if strict and number not in SIDECAR_PLAINTEXT_PORTS:
                        yield Violation(
                            mon,
                            f"endpoint port {ep.get('port')!r} scrapes {w.key}:{number} over "
                            "plain HTTP under STRICT mTLS: the sidecar rejects the scrape",
                        )


CHECK = Check(
    id="HS-MS-005",
    title="Metrics scrapes under STRICT mTLS use Istio certificates",
    severity=Severity.MEDIUM,
    scope=("ServiceMonitor", "PeerAuthentication"),
    references=("HIPAA 164.312(b)", "HIPAA 164.312(e)(1)", "NIST SP 800-53 SI-4"),
    remediation="Scrape with scheme: https and tlsConfig pointing at the Istio certificates "
    "Prometheus mounts (/etc/prom-certs), or scrape the sidecar's merged metrics on 15020.",
    evaluate=evaluate,
    family="service mesh",
)
