"""HS-ZT-005: external egress uses ipBlock (or an egress gateway), not ``namespaceSelector: {}``.

A peer with ``namespaceSelector: {}`` matches every pod in the cluster and nothing outside it, so
a rule meant for an external API on 443 opens the port to all pods and still blocks the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def _in_cluster_ports(ctx: Context) -> set[tuple[int, str]]:
    return {(p.number, p.protocol) for e in ctx.net.endpoints for p in e.ports}


def _ports(rule: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (int(p["port"]), str(p.get("protocol", "TCP")))
        for p in rule.get("ports") or []
        if isinstance(p.get("port"), int)
    ]


def evaluate(ctx: Context) -> Iterator[Violation]:
    served = _in_cluster_ports(ctx)
    for policy in ctx.inv.of_kind("NetworkPolicy"):
        for index, rule in enumerate(policy.spec.get("egress") or []):
            wildcard = [
                p
                for p in rule.get("to") or []
                if p.get("namespaceSelector") == {} and not p.get("podSelector")
            ]
            outside = [f"{n}/{proto}" for n, proto in _ports(rule) if (n, proto) not in served]
            if wildcard and outside:
                yield Violation(
                    policy,
                    f"egress rule #{index + 1} opens {', '.join(outside)} to "
                    "namespaceSelector: {} (every in-cluster pod, no pod "
                    "serves it) and never to external addresses",
                    f"spec.egress.{index}",
                )


CHECK = Check(
    id="HS-ZT-005",
    title="External egress is expressed with ipBlock or an egress gateway",
    severity=Severity.HIGH,
    scope=("NetworkPolicy",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-207 tenet 6", "NIST SP 800-53 SC-7"),
    remediation="Use an ipBlock (cidr with except for cluster ranges) or route through an Istio "
    "egress gateway for external destinations.",
    evaluate=evaluate,
    family="zero trust",
)
