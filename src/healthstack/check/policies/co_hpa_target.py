"""HS-CO-003: every HPA scales an object that exists in the set."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def evaluate(ctx: Context) -> Iterator[Violation]:
    for hpa in ctx.inv.of_kind("HorizontalPodAutoscaler"):
        ref = hpa.spec.get("scaleTargetRef") or {}
        if ctx.inv.get(str(ref.get("kind")), hpa.namespace, str(ref.get("name"))) is None:
            yield Violation(
                hpa,
                f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} does not "
                f"exist in namespace {hpa.namespace}",
            )


CHECK = Check(
    id="HS-CO-003",
    title="HPA target exists",
    severity=Severity.HIGH,
    scope=("HorizontalPodAutoscaler",),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CM-6"),
    remediation="Point scaleTargetRef at the Deployment/StatefulSet by its exact kind and name.",
    evaluate=evaluate,
    family="consistency",
)
