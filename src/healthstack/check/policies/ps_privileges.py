"""HS-PS-001: no container adds Linux capabilities, runs with seccomp or AppArmor
``Unconfined`` or an unmasked /proc, and no pod sets a sysctl outside the safe set.

Covers every pod template (Jobs and CronJobs included) and init containers; ``NET_BIND_SERVICE``
is the one addition Pod Security ``restricted`` allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_path,
    own_containers,
    pod_path,
)

ALLOWED_ADD = {"NET_BIND_SERVICE"}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io"
# The sysctls Kubernetes 1.31 (and Pod Security baseline) treats as safe.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)


def _profile(pod: dict[str, Any], c: dict[str, Any], field: str) -> str:
    """The container's profile type, else the pod's (the container's field wins)."""
    profile = (c.get("securityContext") or {}).get(field) or (
        (pod.get("securityContext") or {}).get(field)
    )
    return str((profile or {}).get("type", "")) if isinstance(profile, dict) else ""


def _problems(w: Workload, c: dict[str, Any]) -> list[str]:
    sc = c.get("securityContext") or {}
    added = [str(a) for a in (sc.get("capabilities") or {}).get("add") or []]
    problems = [f"capabilities.add {a}" for a in added if a.upper() not in ALLOWED_ADD]
    if _profile(w.pod_spec, c, "seccompProfile") == "Unconfined":
        problems.append("seccompProfile Unconfined (no syscall filter)")
    # AppArmor: the 1.30 field, or the annotation that older manifests still carry.
    annotation = w.pod_annotations.get(f"{APPARMOR_ANNOTATION}/{c.get('name')}", "")
    if _profile(w.pod_spec, c, "appArmorProfile") == "Unconfined" or annotation == "unconfined":
        problems.append("AppArmor Unconfined (no mandatory access control)")
    if sc.get("procMount") == "Unmasked":
        problems.append("procMount Unmasked (/proc exposed)")
    return problems


def _unsafe_sysctls(w: Workload) -> list[str]:
    """Pod sysctls outside the namespaced safe set reach into the node's kernel."""
    sysctls = (w.pod_spec.get("securityContext") or {}).get("sysctls") or []
    names = [str(s.get("name")) for s in sysctls if isinstance(s, dict)]
    return [n for n in names if n not in SAFE_SYSCTLS]


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        if w.synthetic:
            continue
        if unsafe := _unsafe_sysctls(w):
            yield Violation(
                w.obj,
                f"unsafe sysctls {', '.join(unsafe)} (not namespaced to the pod)",
                f"{pod_path(w)}.securityContext.sysctls",
            )
        for c in own_containers(w):
            problems = _problems(w, c)
            if problems:
                yield Violation(
                    w.obj,
                    f"container {c.get('name')}: {'; '.join(problems)}",
                    container_path(w, c, "securityContext"),
                )


CHECK = Check(
    id="HS-PS-001",
    title="No added capabilities, Unconfined profiles, unmasked /proc or unsafe sysctls",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"),
    references=(
        "HIPAA 164.312(a)(1)",
        "NIST SP 800-53 AC-6",
        "CIS Kubernetes Benchmark 5.2.8-5.2.9",
    ),
    remediation="Remove capabilities.add (drop ALL; only NET_BIND_SERVICE is acceptable) and "
    "use seccompProfile RuntimeDefault (and the runtime's default AppArmor profile); keep "
    "procMount Default and only the safe sysctls.",
    evaluate=evaluate,
    family="pod security",
)
