"""HS-EX-001: no LoadBalancer or NodePort Service (nor externalIPs, nor an Ingress) exposes PHI
workloads around the TLS gateway.

Client traffic must enter through the Istio ingress gateway (TLS, authorization, audit); a
LoadBalancer or NodePort opens the pods' port on every node or to the internet directly. The
Service in front of a gateway deployed with the stack (its selector is a Gateway's) is the way in.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation

EXPOSED = ("LoadBalancer", "NodePort")


def _fronts_gateway(ctx: Context, svc: K8sObject) -> bool:
    """The Service exposes the TLS gateway itself: its selector is an Istio Gateway's."""
    selector = svc.spec.get("selector") or {}
    gateways = [g.spec.get("selector") or {} for g in ctx.inv.of_kind("Gateway")]
    return bool(selector) and any(g and g.items() <= selector.items() for g in gateways)


def _ingresses(ctx: Context, phi: set[str]) -> Iterator[Violation]:
    """A Kubernetes Ingress in a PHI namespace is a second way in beside the Istio gateway:
    another controller, or Istio's without the Gateway's TLS, authorization and audit."""
    for ing in ctx.inv.of_kind("Ingress"):
        if ing.namespace not in phi:
            continue
        hosts = {str(r.get("host", "*")) for r in ing.spec.get("rules") or []} or {"*"}
        secured = {str(h) for t in ing.spec.get("tls") or [] for h in t.get("hosts") or []}
        if plain := sorted(hosts - secured):
            yield Violation(
                ing,
                f"Ingress serves {', '.join(plain)} without TLS, around the Istio gateway",
                "spec.tls" if ing.spec.get("tls") else "spec.rules",
            )
        else:
            yield Violation(
                ing,
                f"Ingress exposes {ing.namespace} pods beside the Istio gateway (no "
                "AuthorizationPolicy or audit at the edge)",
                "spec",
            )


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    yield from _ingresses(ctx, phi)
    for svc in ctx.inv.of_kind("Service"):
        kind = svc.spec.get("type", "ClusterIP")
        if kind in EXPOSED and svc.namespace in phi and not _fronts_gateway(ctx, svc):
            yield Violation(
                svc,
                f"type {kind} exposes {svc.namespace} pods directly, bypassing the gateway",
                "spec.type",
            )
        elif svc.spec.get("externalIPs") and svc.namespace in phi and not _fronts_gateway(ctx, svc):
            # kube-proxy answers on these addresses on every node, whatever the Service type.
            yield Violation(
                svc,
                f"externalIPs {', '.join(map(str, svc.spec['externalIPs']))} expose "
                f"{svc.namespace} pods directly, bypassing the gateway",
                "spec.externalIPs",
            )


CHECK = Check(
    id="HS-EX-001",
    title="PHI Services are not exposed by LoadBalancer, NodePort, externalIPs or an Ingress",
    severity=Severity.CRITICAL,
    scope=("Service", "Ingress"),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7", "NIST SP 800-207 tenet 2"),
    remediation="Use type ClusterIP without externalIPs, no Ingress, and route clients through "
    "the Istio ingress Gateway and a VirtualService.",
    evaluate=evaluate,
    family="zero trust",
)
