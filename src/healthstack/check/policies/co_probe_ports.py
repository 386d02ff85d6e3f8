"""HS-CO-002: probes target ports the container declares."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_path,
    container_port_names,
    container_port_numbers,
    own_containers,
)

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        for c in own_containers(w):
            names, numbers = container_port_names([c]), container_port_numbers([c])
            for kind in PROBES:
                probe = c.get(kind) or {}
                handler = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
                port = (handler or {}).get("port")
                if port is not None and port not in names and port not in numbers:
                    yield Violation(
                        w.obj,
                        f"container {c.get('name')} {kind} port {port!r} "
                        "is not a declared containerPort",
                        container_path(w, c, kind),
                    )


CHECK = Check(
    id="HS-CO-002",
    title="Probe ports exist on the container",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Pod"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SI-6"),
    remediation="Point probes at a named containerPort declared on the same container.",
    evaluate=evaluate,
    family="consistency",
)
