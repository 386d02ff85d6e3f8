"""HS-WL-002: every container declares CPU/memory requests and a memory limit."""

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
            res = c.get("resources") or {}
            missing = [
                f"requests.{k}" for k in ("cpu", "memory") if k not in (res.get("requests") or {})
            ]
            if "memory" not in (res.get("limits") or {}):
                missing.append("limits.memory")
            if missing:
                yield Violation(
                    w.obj,
                    f"container {c.get('name')} lacks {', '.join(missing)}",
                    container_path(w, c, "resources"),
                )


CHECK = Check(
    id="HS-WL-002",
    title="Containers declare resource requests and a memory limit",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "DaemonSet"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "HIPAA 164.312(a)(1)", "NIST SP 800-53 SC-6"),
    remediation="Set resources.requests.cpu, resources.requests.memory and "
    "resources.limits.memory on every container.",
    evaluate=evaluate,
    family="workload hardening",
)
