"""HS-NP-003: every NetworkPolicy peer names exactly what it admits.

The API server refuses a peer with no selector and no ipBlock (``to: [{}]``: "must specify a
peer") and one that mixes ``ipBlock`` with a selector; the whole policy is then not applied, so
the apply fails or, through a controller that skips invalid objects, the flows it meant to admit
stay denied (or, where it was the only policy, open). Reported where it is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

SELECTORS = ("podSelector", "namespaceSelector")


def _problem(peer: Any) -> str | None:
    if not isinstance(peer, dict) or not any(k in peer for k in (*SELECTORS, "ipBlock")):
        return "names no podSelector, namespaceSelector or ipBlock (the API server refuses it)"
    if "ipBlock" in peer and any(k in peer for k in SELECTORS):
        return "mixes ipBlock with a selector (the API server refuses it)"
    return None


def evaluate(ctx: Context) -> Iterator[Violation]:
    for policy in ctx.inv.of_kind("NetworkPolicy"):
        for direction, side in (("ingress", "from"), ("egress", "to")):
            for r, rule in enumerate(policy.spec.get(direction) or []):
                if not isinstance(rule, dict):
                    continue
                for p, peer in enumerate(rule.get(side) or []):
                    problem = _problem(peer)
                    if problem:
                        field = f"spec.{direction}.{r}.{side}.{p}"
                        yield Violation(policy, f"{direction} rule {r} peer {p} {problem}", field)


CHECK = Check(
    id="HS-NP-003",
    title="NetworkPolicy peers are valid",
    severity=Severity.HIGH,
    scope=("NetworkPolicy",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7", "NIST SP 800-53 CM-6"),
    remediation="Give each peer a podSelector and/or namespaceSelector, or an ipBlock alone; "
    "omit from/to entirely to admit everyone on purpose.",
    evaluate=evaluate,
    family="zero trust",
)
