"""What a check is (data plus one pure function) and helpers the check modules share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from healthstack.check.intent import Intent
from healthstack.check.inventory import DATABASE_PORTS as DATABASE_PORTS  # for the checks
from healthstack.check.inventory import Inventory, Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.reachability import Network

PHI_LABEL = "healthstack.io/phi"
SYSTEM_NAMESPACES = frozenset({"kube-system", "istio-system", "monitoring", "kube-public"})


@dataclass(frozen=True)
class Violation:
    obj: K8sObject
    message: str
    field_path: str = ""  # dotted path of the offending field (SARIF region), if one applies


@dataclass
class Context:
    """Everything a check may look at; the network model is built on first use."""

    inv: Inventory
    crds_dir: Path | None = None
    intent: Intent | None = None
    internet_ip: str = "8.8.8.8"
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def net(self) -> Network:
        return Network(self.inv, self.internet_ip)

    def phi_namespaces(self) -> list[str]:
        """Namespaces with workloads, unless labelled ``healthstack.io/phi: "false"``: treating
        unknown namespaces as holding PHI is the safe default."""
        names = sorted({w.namespace for w in self.inv.workloads})
        return [
            n
            for n in names
            if n not in SYSTEM_NAMESPACES and self.inv.namespace_labels(n).get(PHI_LABEL) != "false"
        ]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    scope: tuple[str, ...]
    references: tuple[str, ...]
    remediation: str
    evaluate: Callable[[Context], Iterable[Violation]]
    family: str = ""


def long_running(ctx: Context) -> Iterator[Workload]:
    """Workloads that serve (not Jobs/CronJobs or bare Pods, nor operator-made pods)."""
    for w in ctx.inv.workloads:
        if w.obj.kind in ("Deployment", "StatefulSet", "DaemonSet") and not w.synthetic:
            yield w


def is_database(w: Workload) -> bool:
    return w.is_database


def own_containers(w: Workload) -> list[dict[str, Any]]:
    """Containers from the manifest (not the sidecar Istio injects)."""
    return [c for c in w.all_containers if not c.get("_injected")]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(text: Any) -> float | None:
    """Istio/Go duration (``30s``, ``1m30s``, ``500ms``) in seconds; None when absent/invalid."""
    if text is None:
        return None
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def container_port_names(containers: Iterable[dict[str, Any]]) -> dict[str, int]:
    return {
        str(p["name"]): int(p["containerPort"])
        for c in containers
        for p in c.get("ports") or []
        if p.get("name") and "containerPort" in p
    }


def container_port_numbers(containers: Iterable[dict[str, Any]]) -> set[int]:
    return {
        int(p["containerPort"])
        for c in containers
        for p in c.get("ports") or []
        if "containerPort" in p
    }


def pod_path(w: Workload) -> str:
    """Dotted path of the pod spec inside the workload's object (for SARIF regions)."""
    kind = w.obj.kind
    if kind == "Pod":
        return "spec"
    return "spec.jobTemplate.spec.template.spec" if kind == "CronJob" else "spec.template.spec"


def container_path(w: Workload, c: dict[str, Any], field: str = "") -> str:
    """Dotted path of a manifest container (or its ``field``); the pod spec's if not found."""
    for key in ("containers", "initContainers"):
        for index, candidate in enumerate(w.pod_spec.get(key) or []):
            if candidate is c:
                return f"{pod_path(w)}.{key}.{index}" + (f".{field}" if field else "")
    return pod_path(w)
