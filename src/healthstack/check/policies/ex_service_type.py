"""HS-EX-001: no LoadBalancer or NodePort Service exposes PHI workloads around the TLS gateway.

Client traffic must enter through the Istio ingress gateway (TLS, authorization, audit); a
LoadBalancer or NodePort opens the pods' port on every node or to the internet directly.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

EXPOSED = ("LoadBalancer", "NodePort")


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for svc in ctx.inv.of_kind("Service"):
        kind = svc.spec.get("type", "ClusterIP")
        if kind in EXPOSED and svc.namespace in phi:
            yield Violation(
                svc, f"type {kind} exposes {svc.namespace} pods directly, bypassing the gateway"
            )


CHECK = Check(
    id="HS-EX-001",
    title="PHI Services are not exposed by LoadBalancer or NodePort",
    severity=Severity.CRITICAL,
    scope=("Service",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7", "NIST SP 800-207 tenet 2"),
    remediation="Use type ClusterIP and route clients through the Istio ingress Gateway and a "
    "VirtualService.",
    evaluate=evaluate,
    family="zero trust",
)
