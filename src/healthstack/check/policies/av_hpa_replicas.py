"""HS-AV-004: a workload managed by an HPA does not also pin ``replicas``."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def evaluate(ctx: Context) -> Iterator[Violation]:
    for hpa in ctx.inv.of_kind("HorizontalPodAutoscaler"):
        ref = hpa.spec.get("scaleTargetRef") or {}
        target = ctx.inv.get(str(ref.get("kind")), hpa.namespace, str(ref.get("name")))
        if target is not None and "replicas" in target.spec:
            # Every apply resets the count to this value, undoing the HPA's scale-up.
            yield Violation(
                target,
                f"sets replicas: {target.spec['replicas']} although {hpa.ref} manages its scale",
                "spec.replicas",
            )


CHECK = Check(
    id="HS-AV-004",
    title="No replicas on HPA-managed workloads",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "HorizontalPodAutoscaler"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CP-10"),
    remediation="Remove spec.replicas from the workload and let the HPA's minReplicas set the "
    "floor.",
    evaluate=evaluate,
    family="availability",
)
