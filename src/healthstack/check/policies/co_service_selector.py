"""HS-CO-001: each Service selects pods, and its targetPorts are ports those pods declare."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_port_names,
    container_port_numbers,
)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for svc in ctx.inv.of_kind("Service"):
        selector = svc.spec.get("selector")
        if not selector or svc.spec.get("type") == "ExternalName":
            continue  # selector-less Services have hand-made Endpoints
        pods = ctx.inv.pods_selected(svc.namespace, selector, plain=True)
        if not pods:
            yield Violation(svc, f"selector {selector} matches no pod template in the set")
            continue
        for port in svc.spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for w in pods:
                names = container_port_names(w.containers)
                numbers = container_port_numbers(w.containers)
                if target not in names and target not in numbers:
                    yield Violation(
                        svc,
                        f"port {port.get('port')} targetPort {target!r} is not "
                        f"a container port of {w.key}",
                    )


CHECK = Check(
    id="HS-CO-001",
    title="Service selector matches pods and targetPort is a declared container port",
    severity=Severity.HIGH,
    scope=("Service",),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CM-6"),
    remediation="Make the Service selector equal the pod template labels and point targetPort "
    "at a named containerPort.",
    evaluate=evaluate,
    family="consistency",
)
