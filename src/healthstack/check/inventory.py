"""An index over one set of objects, answering the cross-object questions checks ask.

Pods are represented by their templates (:class:`Workload`). CloudNativePG ``Cluster`` objects are
expanded to the pods the operator creates so network and availability checks see the database.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from healthstack.check.model import K8sObject
from healthstack.check.selectors import matches, matches_map

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
NAME_LABEL = "kubernetes.io/metadata.name"
# Ports Istio injects into every sidecar pod (istio-proxy): Prometheus merges metrics on 15020,
# Envoy's own stats are on 15090 named http-envoy-prom.
SIDECAR_PORTS = (
    {"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"},
    {"name": "status-port", "containerPort": 15020, "protocol": "TCP"},
)
DATABASE_PORTS = frozenset({5432, 3306, 6379, 27017})
CNPG_PORTS = (
    {"name": "postgresql", "containerPort": 5432, "protocol": "TCP"},
    {"name": "metrics", "containerPort": 9187, "protocol": "TCP"},
    {"name": "status", "containerPort": 8000, "protocol": "TCP"},
)


@dataclass(frozen=True)
class Workload:
    """A pod template with its owner; ``synthetic`` pods come from an operator CR."""

    obj: K8sObject
    pod_spec: dict[str, Any]
    pod_labels: dict[str, str]
    pod_annotations: dict[str, str] = field(default_factory=dict)
    synthetic: bool = False

    @property
    def namespace(self) -> str:
        return self.obj.namespace

    @property
    def name(self) -> str:
        return self.obj.name

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def containers(self) -> list[dict[str, Any]]:
        return [c for c in self.pod_spec.get("containers") or [] if isinstance(c, dict)]

    @property
    def all_containers(self) -> list[dict[str, Any]]:
        init = [c for c in self.pod_spec.get("initContainers") or [] if isinstance(c, dict)]
        return init + self.containers

    @property
    def injected(self) -> bool:
        """Runs the Istio sidecar (see :meth:`Inventory.sidecar_injected`)."""
        return any(c.get("_injected") for c in self.containers)

    @property
    def is_database(self) -> bool:
        """An operator-made database pod, or a template declaring a well-known database port."""
        ports = {p.get("containerPort") for c in self.containers for p in c.get("ports") or []}
        return self.synthetic or bool(ports & DATABASE_PORTS)

    @property
    def replicas(self) -> int | None:
        value = (
            self.obj.spec.get("replicas")
            if self.obj.kind != "Cluster"
            else self.obj.spec.get("instances")
        )
        return int(value) if isinstance(value, int) else None


def pod_template(obj: K8sObject) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(pod metadata, pod spec) of a workload object, or None for other kinds."""
    if obj.kind == "Pod":
        return obj.metadata, obj.spec
    spec = obj.spec
    if obj.kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if obj.kind in WORKLOAD_KINDS else None
    if not isinstance(template, dict):
        return None
    return template.get("metadata") or {}, template.get("spec") or {}


def _cnpg_workload(obj: K8sObject) -> Workload:
    labels = {"cnpg.io/cluster": obj.name, "cnpg.io/podRole": "instance"}
    extra = obj.spec.get("inheritedMetadata") or {}
    labels.update({str(k): str(v) for k, v in (extra.get("labels") or {}).items()})
    containers = [{"name": "postgres", "ports": [dict(p) for p in CNPG_PORTS]}]
    return Workload(obj, {"containers": containers}, labels, synthetic=True)


class Inventory:
    """Objects of one check run, indexed by kind and by (kind, namespace, name)."""

    def __init__(self, objects: list[K8sObject]) -> None:
        self.objects = objects
        self._by_kind: dict[str, list[K8sObject]] = defaultdict(list)
        self._by_key: dict[tuple[str, str, str], K8sObject] = {}
        for obj in objects:
            self._by_kind[obj.kind].append(obj)
            self._by_key[(obj.kind, obj.namespace, obj.name)] = obj

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        return [obj for kind in kinds for obj in self._by_kind.get(kind, [])]

    def get(self, kind: str, namespace: str, name: str) -> K8sObject | None:
        return self._by_key.get((kind, namespace, name))

    @cached_property
    def workloads(self) -> list[Workload]:
        found: list[Workload] = []
        for obj in self.objects:
            if obj.kind == "Cluster" and obj.api_version.startswith("postgresql.cnpg.io/"):
                found.append(_cnpg_workload(obj))
                continue
            template = pod_template(obj)
            if template is None:
                continue
            meta, spec = template
            labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
            ann = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
            # Istio still honours the older annotation form of sidecar.istio.io/inject.
            choice = {**ann, **labels}
            found.append(Workload(obj, self._with_sidecar(obj, spec, choice), labels, ann))
        return found

    def _with_sidecar(
        self, obj: K8sObject, spec: dict[str, Any], labels: dict[str, str]
    ) -> dict[str, Any]:
        if not self.sidecar_injected(obj.namespace, labels):
            return spec
        proxy = {
            "name": "istio-proxy",
            "ports": [dict(p) for p in SIDECAR_PORTS],
            "_injected": True,
        }
        return {**spec, "containers": [*(spec.get("containers") or []), proxy]}

    def sidecar_injected(self, namespace: str, pod_labels: dict[str, str]) -> bool:
        """Istio's rules: the pod label wins, else the namespace label or revision label."""
        pod_choice = pod_labels.get("sidecar.istio.io/inject")
        if pod_choice is not None:
            return pod_choice == "true"
        ns_labels = self.namespace_labels(namespace)
        return ns_labels.get("istio-injection") == "enabled" or "istio.io/rev" in ns_labels

    def workload_of(self, obj: K8sObject) -> Workload | None:
        return next((w for w in self.workloads if w.obj is obj), None)

    @cached_property
    def namespaces(self) -> dict[str, dict[str, str]]:
        """Namespace name -> labels, with the label the API server adds to every namespace."""
        result: dict[str, dict[str, str]] = {}
        for obj in self.objects:
            if obj.kind != "Namespace" and obj.kind not in ("CustomResourceDefinition",):
                result.setdefault(obj.namespace, {NAME_LABEL: obj.namespace})
        for ns in self.of_kind("Namespace"):
            result[ns.name] = {**ns.labels, NAME_LABEL: ns.name}
        return result

    def namespace_labels(self, name: str) -> dict[str, str]:
        return self.namespaces.get(name, {NAME_LABEL: name})

    def pods_selected(
        self, namespace: str, selector: dict[str, Any] | None, plain: bool = False
    ) -> list[Workload]:
        """Workloads in ``namespace`` whose pod labels the selector matches."""
        match = matches_map if plain else matches
        return [
            w for w in self.workloads if w.namespace == namespace and match(selector, w.pod_labels)
        ]

    def services_for(self, workload: Workload) -> list[K8sObject]:
        return [
            s
            for s in self.of_kind("Service")
            if s.namespace == workload.namespace
            and matches_map(s.spec.get("selector"), workload.pod_labels)
        ]
