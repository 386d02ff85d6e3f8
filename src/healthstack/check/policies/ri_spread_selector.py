"""HS-RI-002: topology spread and anti-affinity selectors select the workload's own pods.

A selector that matches none of the workload's pods counts nothing: the constraint is satisfied
trivially and every replica may still land on one node or zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, pod_path
from healthstack.check.selectors import matches

ANTI = "affinity.podAntiAffinity"


def _selectors(w: Workload) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """(label for the message, path under the pod spec, selector)."""
    spec = w.obj.spec if w.synthetic else w.pod_spec
    for index, spread in enumerate(spec.get("topologySpreadConstraints") or []):
        yield (
            f"topologySpreadConstraints[{index}]",
            f"topologySpreadConstraints.{index}.labelSelector",
            spread.get("labelSelector"),
        )
    anti = (w.pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    for index, term in enumerate(anti.get(required) or []):
        yield (
            f"podAntiAffinity required[{index}]",
            f"{ANTI}.{required}.{index}.labelSelector",
            term.get("labelSelector"),
        )
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    for index, weighted in enumerate(anti.get(preferred) or []):
        term = weighted.get("podAffinityTerm") or {}
        yield (
            f"podAntiAffinity preferred[{index}]",
            f"{ANTI}.{preferred}.{index}.podAffinityTerm.labelSelector",
            term.get("labelSelector"),
        )


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        base = "spec" if w.synthetic else pod_path(w)
        for where, path, selector in _selectors(w):
            if selector is not None and not matches(selector, w.pod_labels):
                yield Violation(
                    w.obj,
                    f"{where} labelSelector {selector} selects none of its own pods",
                    f"{base}.{path}",
                )


CHECK = Check(
    id="HS-RI-002",
    title="Spread and anti-affinity selectors select the workload's pods",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "Cluster"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CP-10"),
    remediation="Use the workload's own pod labels (its selector.matchLabels) in the spread "
    "constraint and anti-affinity labelSelector.",
    evaluate=evaluate,
    family="availability",
)
