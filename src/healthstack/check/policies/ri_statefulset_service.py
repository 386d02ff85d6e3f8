"""HS-RI-001: a StatefulSet's ``serviceName`` names a Service in its namespace.

The governing (headless) Service gives each replica its stable DNS name; naming a Service that
does not exist leaves peers and clients unable to resolve the pods.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def evaluate(ctx: Context) -> Iterator[Violation]:
    for sts in ctx.inv.of_kind("StatefulSet"):
        name = sts.spec.get("serviceName")
        if name and ctx.inv.get("Service", sts.namespace, str(name)) is None:
            yield Violation(
                sts, f"serviceName {name!r} names no Service in {sts.namespace}", "spec.serviceName"
            )


CHECK = Check(
    id="HS-RI-001",
    title="StatefulSet serviceName names an existing Service",
    severity=Severity.MEDIUM,
    scope=("StatefulSet", "Service"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CM-6"),
    remediation="Set serviceName to the headless Service that selects the StatefulSet's pods "
    "(or add that Service).",
    evaluate=evaluate,
    family="consistency",
)
