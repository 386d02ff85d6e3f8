"""HS-HA-001: Deployments behind a Service pause in preStop before shutting down.

Endpoints are removed asynchronously: without a preStop delay the container gets SIGTERM while
kube-proxy and sidecars still send it new connections, which fail during every rollout.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, own_containers, pod_path


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        if w.obj.kind != "Deployment" or not ctx.inv.services_for(w):
            continue
        if not any((c.get("lifecycle") or {}).get("preStop") for c in own_containers(w)):
            services = ", ".join(s.ref for s in ctx.inv.services_for(w))
            yield Violation(
                w.obj,
                f"served by {services} but no container has a preStop delay",
                f"{pod_path(w)}.containers",
            )


CHECK = Check(
    id="HS-HA-001",
    title="Service-backed Deployments have a preStop delay",
    severity=Severity.MEDIUM,
    scope=("Deployment", "Service"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CP-10"),
    remediation="Add lifecycle.preStop (sleep: {seconds: 5-15}) to the serving container and keep "
    "terminationGracePeriodSeconds above it.",
    evaluate=evaluate,
    family="availability",
)
