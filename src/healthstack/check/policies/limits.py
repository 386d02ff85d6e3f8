"""Helpers shared by the issue-14 checks (a deployment that starts and holds at its limits).

Quantities, the settings a pod receives from its ConfigMaps, and the replicas a rollout can run
at once. Checks import these; they never import each other.
"""

from __future__ import annotations

import re
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject
from healthstack.check.policies.base import Context

NATIVE_SIDECAR = "sidecar.istio.io/nativeSidecar"
# What Istio 1.24's injector requests for istio-proxy unless the pod overrides it
# (values.global.proxy.resources: 100m CPU, 128Mi memory; limits 2 CPU, 1Gi).
SIDECAR_REQUESTS = {"cpu": 0.1, "memory": 128 * 2**20}
SIDECAR_LIMITS = {"cpu": 2.0, "memory": 2**30}
POSTGRES_DEFAULT_MAX_CONNECTIONS = 100
_SUFFIX = {
    "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity (``500m``, ``2``, ``512Mi``) as a number; None when invalid."""
    match = _QUANTITY.match(str(value).strip()) if value is not None else None
    if not match or (match.group(2) and match.group(2) not in _SUFFIX):
        return None
    try:
        return float(match.group(1)) * _SUFFIX.get(match.group(2), 1.0)
    except ValueError:
        return None


def injected(w: Workload) -> bool:
    return any(c.get("_injected") for c in w.containers)


def native_sidecar(w: Workload) -> bool:
    return w.pod_annotations.get(NATIVE_SIDECAR) == "true"


def pod_settings(ctx: Context, w: Workload, container: dict[str, Any]) -> dict[str, str]:
    """Plain values a container receives from env and envFrom ConfigMaps in the manifests."""
    values: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = (source or {}).get("configMapRef") or {}
        cm = ctx.inv.get("ConfigMap", w.namespace, str(ref.get("name")))
        if cm is not None:
            data = cm.doc.get("data") or {}
            values.update({str(k): str(v) for k, v in data.items()})
    for env in container.get("env") or []:
        if isinstance(env, dict) and "value" in env:
            values[str(env.get("name"))] = str(env["value"])
    return values


def hpa_for(ctx: Context, obj: K8sObject) -> K8sObject | None:
    for hpa in ctx.inv.of_kind("HorizontalPodAutoscaler"):
        ref = hpa.spec.get("scaleTargetRef") or {}
        if hpa.namespace == obj.namespace and (ref.get("kind"), ref.get("name")) == (
            obj.kind,
            obj.name,
        ):
            return hpa
    return None


def _surge(obj: K8sObject, replicas: int) -> int:
    if obj.kind != "Deployment":
        return 0
    strategy = obj.spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, str) and surge.endswith("%"):
        return -(-replicas * int(surge[:-1]) // 100)  # Kubernetes rounds a surge up
    return int(surge)


def peak_pods(ctx: Context, w: Workload) -> int:
    """Pods of one workload that can run at once: max replicas (HPA or spec) plus rollout surge."""
    hpa = hpa_for(ctx, w.obj)
    replicas = int(hpa.spec.get("maxReplicas", 1)) if hpa else (w.replicas or 1)
    return replicas + _surge(w.obj, replicas)


def container_resources(c: dict[str, Any], section: str) -> dict[str, float]:
    """requests or limits of one container (the sidecar: Istio's defaults)."""
    if c.get("_injected"):
        return dict(SIDECAR_REQUESTS if section == "requests" else SIDECAR_LIMITS)
    raw = (c.get("resources") or {}).get(section) or {}
    found = {k: quantity(raw.get(k)) for k in ("cpu", "memory")}
    return {k: v for k, v in found.items() if v is not None}


def pod_resources(w: Workload, section: str) -> dict[str, float]:
    """What the scheduler counts for one pod: the larger of the sum of regular containers and
    the largest init container (Kubernetes' effective request)."""
    total = {"cpu": 0.0, "memory": 0.0}
    for c in w.containers:
        for k, v in container_resources(c, section).items():
            total[k] += v
    for c in w.pod_spec.get("initContainers") or []:
        for k, v in container_resources(c, section).items():
            total[k] = max(total[k], v)
    return total
