"""HS-EX-001: no LoadBalancer or NodePort Service (nor externalIPs) exposes PHI workloads around the TLS gateway.

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


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
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
    title="PHI Services are not exposed by LoadBalancer, NodePort or externalIPs",
    severity=Severity.CRITICAL,
    scope=("Service",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7", "NIST SP 800-207 tenet 2"),
    remediation="Use type ClusterIP without externalIPs and route clients through the Istio ingress Gateway and a "
    "VirtualService.",
    evaluate=evaluate,
    family="zero trust",
)
