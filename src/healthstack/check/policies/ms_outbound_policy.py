"""HS-MS-002: no Sidecar lets PHI workloads reach any external host (``ALLOW_ANY``)."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.istio import ROOT_NAMESPACE


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for sidecar in ctx.inv.of_kind("Sidecar"):
        mode = (sidecar.spec.get("outboundTrafficPolicy") or {}).get("mode")
        mesh_wide = sidecar.namespace == ROOT_NAMESPACE and not sidecar.spec.get("workloadSelector")
        if mode == "ALLOW_ANY" and (sidecar.namespace in phi or mesh_wide):
            scope = "every namespace" if mesh_wide else f"PHI namespace {sidecar.namespace}"
            yield Violation(
                sidecar,
                f"outboundTrafficPolicy ALLOW_ANY in {scope}: sidecars pass traffic to any "
                "host, not only the registered ServiceEntries",
                "spec.outboundTrafficPolicy.mode",
            )


CHECK = Check(
    id="HS-MS-002",
    title="Sidecar outbound traffic is REGISTRY_ONLY where PHI runs",
    severity=Severity.HIGH,
    scope=("Sidecar",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7(5)", "NIST SP 800-207 tenet 6"),
    remediation="Set outboundTrafficPolicy.mode: REGISTRY_ONLY and declare each external host "
    "with a ServiceEntry.",
    evaluate=evaluate,
    family="service mesh",
)
