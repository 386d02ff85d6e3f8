"""HS-ZT-001: each namespace holding PHI workloads has a default-deny NetworkPolicy."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.reachability import policy_types


def is_default_deny(policy: K8sObject, direction: str) -> bool:
    """Selects every pod, covers ``direction`` and allows nothing in it."""
    return (
        policy.spec.get("podSelector") == {}
        and direction in policy_types(policy)
        and not policy.spec.get(direction.lower())
    )


def anchor(ctx: Context, namespace: str) -> K8sObject:
    """The object a namespace-level finding points at: its Namespace, else its first workload."""
    ns = ctx.inv.get("Namespace", "default", namespace)
    if ns is not None:
        return ns
    return next(w.obj for w in ctx.inv.workloads if w.namespace == namespace)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for ns in ctx.phi_namespaces():
        policies = [p for p in ctx.inv.of_kind("NetworkPolicy") if p.namespace == ns]
        missing = [
            d for d in ("Ingress", "Egress") if not any(is_default_deny(p, d) for p in policies)
        ]
        if missing:
            yield Violation(
                anchor(ctx, ns),
                f"namespace {ns} has no default-deny NetworkPolicy for {' and '.join(missing)}",
            )


CHECK = Check(
    id="HS-ZT-001",
    title="Default-deny NetworkPolicy in every PHI namespace",
    severity=Severity.CRITICAL,
    scope=("Namespace", "NetworkPolicy"),
    references=(
        "HIPAA 164.312(a)(1)",
        "HIPAA 164.312(e)(1)",
        "NIST SP 800-207 tenet 6",
        "NIST SP 800-53 SC-7(5)",
        "CIS Kubernetes Benchmark 5.3.2",
    ),
    remediation="Add a NetworkPolicy with podSelector: {} and policyTypes [Ingress, Egress] and "
    "no rules, then allow each flow explicitly.",
    evaluate=evaluate,
    family="zero trust",
)
