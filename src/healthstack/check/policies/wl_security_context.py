"""HS-WL-001: every container runs non-root, read-only, without privilege escalation or caps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_path,
    long_running,
    own_containers,
)


def _gaps(pod: dict[str, Any], c: dict[str, Any]) -> list[str]:
    sc, psc = c.get("securityContext") or {}, pod.get("securityContext") or {}

    def pick(key: str) -> Any:
        return sc.get(key, psc.get(key))

    gaps = []
    if pick("runAsNonRoot") is not True:
        gaps.append("runAsNonRoot is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        gaps.append("allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        gaps.append("readOnlyRootFilesystem is not true")
    if sc.get("privileged") is True:
        gaps.append("privileged is true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        gaps.append("capabilities.drop lacks ALL")
    if (pick("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        gaps.append("seccompProfile is not RuntimeDefault")
    return gaps


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in long_running(ctx):
        for c in own_containers(w):
            gaps = _gaps(w.pod_spec, c)
            if gaps:
                yield Violation(
                    w.obj,
                    f"container {c.get('name')}: {'; '.join(gaps)}",
                    container_path(w, c, "securityContext"),
                )


CHECK = Check(
    id="HS-WL-001",
    title="Containers run with a restricted securityContext",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet"),
    references=(
        "HIPAA 164.312(a)(1)",
        "NIST SP 800-53 AC-6",
        "CIS Kubernetes Benchmark 5.2.5-5.2.9",
    ),
    remediation="Set runAsNonRoot, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, "
    "capabilities.drop: [ALL] and seccompProfile RuntimeDefault on every container.",
    evaluate=evaluate,
    family="workload hardening",
)
