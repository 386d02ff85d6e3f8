"""HS-ZT-002: every pod is selected by some NetworkPolicy for ingress and for egress."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.reachability import policy_types
from healthstack.check.selectors import matches


def evaluate(ctx: Context) -> Iterator[Violation]:
    policies = ctx.inv.of_kind("NetworkPolicy")
    for w in ctx.inv.workloads:
        if w.namespace not in ctx.phi_namespaces():
            continue
        mine = [
            p
            for p in policies
            if p.namespace == w.namespace and matches(p.spec.get("podSelector") or {}, w.pod_labels)
        ]
        missing = [d for d in ("Ingress", "Egress") if not any(d in policy_types(p) for p in mine)]
        if missing:
            yield Violation(
                w.obj,
                f"pods {w.pod_labels} are selected by no NetworkPolicy for "
                f"{' and '.join(missing)}: all traffic is allowed",
            )


CHECK = Check(
    id="HS-ZT-002",
    title="Every pod is selected by a NetworkPolicy",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Pod", "NetworkPolicy"),
    references=(
        "HIPAA 164.312(a)(1)",
        "NIST SP 800-207 tenet 6",
        "NIST SP 800-53 AC-4",
        "CIS Kubernetes Benchmark 5.3.2",
    ),
    remediation="Add a NetworkPolicy whose podSelector matches these pods with both Ingress and "
    "Egress policyTypes.",
    evaluate=evaluate,
    family="zero trust",
)
