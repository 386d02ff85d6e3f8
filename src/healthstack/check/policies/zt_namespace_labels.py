"""HS-ZT-003: namespaceSelectors use labels some namespace actually carries.

Namespaces get ``kubernetes.io/metadata.name`` automatically; a ``name:`` label exists only when
someone adds it, so ``namespaceSelector: {matchLabels: {name: istio-system}}`` silently matches
nothing on a stock cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import NAME_LABEL
from healthstack.check.model import Severity
from healthstack.check.policies.base import SYSTEM_NAMESPACES, Check, Context, Violation
from healthstack.check.selectors import matches


def _peers(spec: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for direction, side in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(spec.get(direction) or []):
            for peer in rule.get(side) or []:
                yield direction, index + 1, peer


def evaluate(ctx: Context) -> Iterator[Violation]:
    known = dict(ctx.inv.namespaces)
    for ns in SYSTEM_NAMESPACES:
        known.setdefault(ns, {NAME_LABEL: ns})
    for policy in ctx.inv.of_kind("NetworkPolicy"):
        for direction, index, peer in _peers(policy.spec):
            selector = peer.get("namespaceSelector")
            if not selector or any(matches(selector, labels) for labels in known.values()):
                continue
            keys = set(selector.get("matchLabels") or {}) | {
                str(e.get("key")) for e in selector.get("matchExpressions") or []
            }
            if keys == {NAME_LABEL}:
                continue  # names a namespace outside the set: plausible, not a trap
            yield Violation(
                policy,
                f"{direction} rule #{index} namespaceSelector {selector} "
                f"matches no known namespace (namespaces carry {NAME_LABEL})",
            )


CHECK = Check(
    id="HS-ZT-003",
    title="namespaceSelector labels exist",
    severity=Severity.HIGH,
    scope=("NetworkPolicy", "Namespace"),
    references=("HIPAA 164.312(a)(1)", "NIST SP 800-207 tenet 6", "NIST SP 800-53 AC-4"),
    remediation="Select namespaces by kubernetes.io/metadata.name: <namespace>, which the API "
    "server sets on every namespace.",
    evaluate=evaluate,
    family="zero trust",
)
