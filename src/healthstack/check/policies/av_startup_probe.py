"""HS-AV-005: serving containers have a startup probe, so slow starts are not restart loops."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_path,
    long_running,
    own_containers,
)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in long_running(ctx):
        for c in own_containers(w):
            if c in (w.pod_spec.get("initContainers") or []):
                continue
            if not c.get("startupProbe"):
                yield Violation(
                    w.obj, f"container {c.get('name')} has no startupProbe", container_path(w, c)
                )


CHECK = Check(
    id="HS-AV-005",
    title="Containers have a startup probe",
    severity=Severity.LOW,
    scope=("Deployment", "StatefulSet", "DaemonSet"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SI-6"),
    remediation="Add a startupProbe (e.g. the liveness endpoint with failureThreshold x "
    "periodSeconds covering the slowest start).",
    evaluate=evaluate,
    family="availability",
)
