"""HS-RI-001: a StatefulSet's ``serviceName`` names a headless Service in its namespace.

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
        if not name:
            continue
        svc = ctx.inv.get("Service", sts.namespace, str(name))
        if svc is None:
            yield Violation(
                sts, f"serviceName {name!r} names no Service in {sts.namespace}", "spec.serviceName"
            )
        elif svc.spec.get("clusterIP") != "None":
            # Only a headless Service publishes the per-replica records (pod-0.<service>).
            yield Violation(
                sts,
                f"serviceName {name!r} names a Service that is not headless (clusterIP: None): "
                "the replicas get no stable DNS names",
                "spec.serviceName",
            )


CHECK = Check(
    id="HS-RI-001",
    title="StatefulSet serviceName names an existing headless Service",
    severity=Severity.MEDIUM,
    scope=("StatefulSet", "Service"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CM-6"),
    remediation="Set serviceName to the headless Service that selects the StatefulSet's pods "
    "(or add that Service).",
    evaluate=evaluate,
    family="consistency",
)
