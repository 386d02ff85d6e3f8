"""Pod Security Standards ``restricted`` (Kubernetes 1.31), evaluated on a pod spec offline.

The same rules the PodSecurity admission plugin applies at ``enforce: restricted`` (the baseline
controls plus the restricted ones), written from the published standard so a rendered pod
template, or the pod Istio's injector would make of it, can be judged without an API server.
Returns one message per violated control; an empty list means the pod would be admitted.
"""

from __future__ import annotations

from typing import Any

_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret"}  # fmt: skip
_SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                 "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                 "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                 "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}  # fmt: skip
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}
_SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t",
                  "container_engine_t"}  # fmt: skip


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]  # fmt: skip


def violations(spec: dict[str, Any]) -> list[str]:
    """Every ``restricted`` control the pod spec breaks, as ``control: detail``."""
    pod_sc = spec.get("securityContext") or {}
    found = [*_pod_level(spec, pod_sc)]
    for c in containers(spec):
        found.extend(f"{c.get('name')}: {m}" for m in _container(c, pod_sc))
    return found


def _pod_level(spec: dict[str, Any], pod_sc: dict[str, Any]) -> list[str]:
    found = [f"host namespaces: {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    found += [f"volume types: {v.get('name')} is not an allowed type"
              for v in spec.get("volumes") or []
              if not (set(v) - {"name"}) <= _RESTRICTED_VOLUMES]  # fmt: skip
    found += [f"sysctls: {s.get('name')}" for s in pod_sc.get("sysctls") or []
              if s.get("name") not in _SAFE_SYSCTLS]  # fmt: skip
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in _SECCOMP_OK:
        found.append(f"seccomp: pod {pod_seccomp}")  # set at all, it must be an allowed one
    if pod_sc.get("runAsUser") == 0:
        found.append("running as non-root user: pod runAsUser 0")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess: pod")
    found += _selinux(pod_sc, "pod")
    if (pod_sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append("AppArmor: pod Unconfined")
    return found


def _container(c: dict[str, Any], pod_sc: dict[str, Any]) -> list[str]:
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    found: list[str] = []
    if sc.get("privileged"):
        found.append("privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        found.append("privilege escalation: allowPrivilegeEscalation is not false")
    if "ALL" not in (caps.get("drop") or []):
        found.append("capabilities: drop does not include ALL")
    found += [f"capabilities: adds {a}" for a in caps.get("add") or [] if a != "NET_BIND_SERVICE"]
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if non_root is not True:
        found.append("running as non-root: runAsNonRoot is not true (pod or container)")
    if sc.get("runAsUser") == 0:
        found.append("running as non-root user: runAsUser 0")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in _SECCOMP_OK:
        found.append(f"seccomp: {seccomp or 'unset'} (pod or container)")
    if any(p.get("hostPort") for p in c.get("ports") or []):
        found.append("host ports")
    if sc.get("procMount") not in (None, "Default"):
        found.append("/proc mount type")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append("AppArmor: Unconfined")
    return found + _selinux(sc, "container")


def _selinux(sc: dict[str, Any], where: str) -> list[str]:
    options = sc.get("seLinuxOptions") or {}
    if options.get("type") not in _SELINUX_TYPES or options.get("user") or options.get("role"):
        return [f"SELinux: {where} options {options}"]
    return []
