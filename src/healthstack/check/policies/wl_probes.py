"""HS-WL-003: serving containers have liveness and readiness probes, and they differ."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, container_path, long_running


def _handler(probe: dict[str, Any]) -> Any:
    return {k: v for k, v in probe.items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in long_running(ctx):
        for c in w.containers:
            if c.get("_injected"):
                continue
            live, ready = c.get("livenessProbe"), c.get("readinessProbe")
            name = c.get("name")
            if not live or not ready:
                which = " and ".join(
                    n for n, p in (("liveness", live), ("readiness", ready)) if not p
                )
                yield Violation(
                    w.obj, f"container {name} has no {which} probe", container_path(w, c)
                )
            elif _handler(live) == _handler(ready):
                # Same check for both: a slow database would restart healthy pods.
                yield Violation(
                    w.obj,
                    f"container {name}: liveness and readiness probes are identical",
                    container_path(w, c, "readinessProbe"),
                )


CHECK = Check(
    id="HS-WL-003",
    title="Liveness and readiness probes are present and distinct",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "DaemonSet"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SI-6"),
    remediation="Give each container a livenessProbe that never touches dependencies and a "
    "distinct readinessProbe that does.",
    evaluate=evaluate,
    family="workload hardening",
)
