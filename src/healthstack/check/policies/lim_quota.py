"""HS-LIM-007: a PHI namespace has a ResourceQuota and a LimitRange, and the quota fits the peak.

Without them one runaway workload starves its neighbours (the availability half of HIPAA's
security rule). A quota that is smaller than the namespace at its peak (every workload at its max
replicas, plus the rollout surge pod, plus the injected sidecars) refuses the surge pod: the
rollout stalls.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.limits import peak_pods, pod_resources, quantity


def _peak(ctx: Context, w: Workload, section: str) -> dict[str, float]:
    if w.synthetic:  # a CloudNativePG Cluster: the instances' resources, one pod per instance
        raw = (w.obj.spec.get("resources") or {}).get(section) or {}
        per_pod = {k: quantity(raw.get(k)) or 0.0 for k in ("cpu", "memory")}
        count = int(w.obj.spec.get("instances", 1))
    else:
        per_pod, count = pod_resources(w, section), peak_pods(ctx, w)
    return {k: v * count for k, v in per_pod.items()}


def _shortfalls(ctx: Context, namespace: str, quota: K8sObject) -> Iterator[str]:
    hard = quota.spec.get("hard") or {}
    workloads = [w for w in ctx.inv.workloads if w.namespace == namespace]
    for section in ("requests", "limits"):
        need = {"cpu": 0.0, "memory": 0.0}
        for w in workloads:
            for k, v in _peak(ctx, w, section).items():
                need[k] += v
        for k, v in need.items():
            limit = quantity(
                hard.get(f"{section}.{k}", hard.get(k) if section == "requests" else None)
            )
            if limit is not None and limit < v:
                yield f"{section}.{k} {hard.get(f'{section}.{k}', hard.get(k))} < {v:g} needed at peak"


def evaluate(ctx: Context) -> Iterator[Violation]:
    for namespace in ctx.phi_namespaces():
        quotas = [q for q in ctx.inv.of_kind("ResourceQuota") if q.namespace == namespace]
        ranges = [r for r in ctx.inv.of_kind("LimitRange") if r.namespace == namespace]
        anchor = next((w.obj for w in ctx.inv.workloads if w.namespace == namespace), None)
        if anchor is None:
            continue
        if not quotas:
            yield Violation(anchor, f"namespace {namespace} has no ResourceQuota")
        if not ranges:
            yield Violation(anchor, f"namespace {namespace} has no LimitRange")
        for quota in quotas:
            for shortfall in _shortfalls(ctx, namespace, quota):
                yield Violation(quota, f"refuses pods at peak scale: {shortfall}")


CHECK = Check(
    id="HS-LIM-007",
    title="PHI namespaces have a quota that fits their peak, and a LimitRange",
    severity=Severity.MEDIUM,
    scope=("Namespace", "ResourceQuota", "LimitRange"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SC-6"),
    remediation="Add a ResourceQuota sized for every workload at max replicas plus surge and "
    "sidecars, and a LimitRange with container defaults.",
    evaluate=evaluate,
    family="deployment limits",
)
