"""HS-WL-007: pods share no host namespace and mount no host path."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, pod_path


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        shared = [k for k in ("hostNetwork", "hostPID", "hostIPC") if w.pod_spec.get(k)]
        paths = [str(v.get("name")) for v in w.pod_spec.get("volumes") or [] if "hostPath" in v]
        ports = [
            str(p.get("hostPort"))
            for c in w.all_containers
            for p in c.get("ports") or []
            if p.get("hostPort")
        ]
        if shared:
            yield Violation(
                w.obj, f"shares host namespaces: {', '.join(shared)}", f"{pod_path(w)}.{shared[0]}"
            )
        if paths:
            yield Violation(
                w.obj, f"mounts hostPath volumes: {', '.join(paths)}", f"{pod_path(w)}.volumes"
            )
        if ports:
            yield Violation(w.obj, f"binds host ports: {', '.join(ports)}")


CHECK = Check(
    id="HS-WL-007",
    title="No host namespaces, host paths or host ports",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"),
    references=(
        "HIPAA 164.312(a)(1)",
        "NIST SP 800-53 SC-39",
        "CIS Kubernetes Benchmark 5.2.2-5.2.4",
    ),
    remediation="Remove hostNetwork/hostPID/hostIPC, hostPath volumes and hostPort.",
    evaluate=evaluate,
    family="workload hardening",
)
