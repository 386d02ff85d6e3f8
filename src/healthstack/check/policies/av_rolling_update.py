"""HS-AV-003: rolling updates never take a ready pod away before its replacement is ready."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def evaluate(ctx: Context) -> Iterator[Violation]:
    for dep in ctx.inv.of_kind("Deployment"):
        strategy = dep.spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            yield Violation(
                dep, "strategy Recreate stops every pod before starting new ones", "spec.strategy"
            )
            continue
        rolling = strategy.get("rollingUpdate") or {}
        unavailable = rolling.get("maxUnavailable", "25%")
        if str(unavailable) not in ("0", "0%"):
            yield Violation(
                dep,
                f"rollingUpdate.maxUnavailable is {unavailable!r} (default "
                "25%): the ready count drops during rollouts",
                "spec.strategy",
            )
        elif str(rolling.get("maxSurge", "25%")) in ("0", "0%"):
            yield Violation(dep, "maxUnavailable 0 with maxSurge 0 cannot make progress")


CHECK = Check(
    id="HS-AV-003",
    title="Rolling updates keep the desired ready count",
    severity=Severity.MEDIUM,
    scope=("Deployment",),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CP-10"),
    remediation="Use strategy RollingUpdate with maxUnavailable: 0 and maxSurge >= 1.",
    evaluate=evaluate,
    family="availability",
)
