"""Istio security semantics shared by the mesh checks (not a check itself): effective mTLS mode,
workload identity, and whether an ALLOW AuthorizationPolicy admits a request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from healthstack.check.inventory import Inventory, Workload
from healthstack.check.model import K8sObject
from healthstack.check.selectors import matches

ROOT_NAMESPACE = "istio-system"
INGRESS_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
PROMETHEUS_NAMESPACE = "monitoring"
# Labels of the gateways Istio's own charts install (istio-system is not in our manifests).
STANDARD_GATEWAY_LABELS = (
    {"istio": "ingressgateway", "app": "istio-ingressgateway"},
    {"istio": "egressgateway", "app": "istio-egressgateway"},
)


# CloudNativePG creates these Services for a Cluster named <name>.
CNPG_SUFFIXES = ("-rw", "-ro", "-r")


def destination_pods(inv: Inventory, dr: K8sObject) -> list[Workload]:
    """Pods behind a DestinationRule's host: a Service in the set, or a CloudNativePG Service."""
    host = str(dr.spec.get("host", ""))
    parts = host.split(".")
    ns = parts[1] if len(parts) > 1 and parts[1] != "svc" else dr.namespace
    svc = inv.get("Service", ns, parts[0])
    if svc is not None:
        return inv.pods_selected(svc.namespace, svc.spec.get("selector"), plain=True)
    for suffix in CNPG_SUFFIXES:
        if parts[0].endswith(suffix):
            cluster = parts[0].removesuffix(suffix)
            return [w for w in inv.workloads if w.synthetic and w.name == cluster]
    return []


def outside_mesh_by_design(inv: Inventory, w: Workload) -> bool:
    """A database opted out of injection that a DestinationRule reaches with tls DISABLE: the
    documented way to keep a database outside the mesh (its NetworkPolicy guards it)."""
    if not w.is_database:
        return False
    for dr in inv.of_kind("DestinationRule"):
        mode = ((dr.spec.get("trafficPolicy") or {}).get("tls") or {}).get("mode")
        if mode == "DISABLE" and any(p is w for p in destination_pods(inv, dr)):
            return True
    return False


def injected(w: Workload) -> bool:
    return w.injected


def is_mesh_object(obj: K8sObject) -> bool:
    return obj.api_version.split("/")[0].endswith("istio.io")


def mtls_mode(inv: Inventory, w: Workload) -> str:
    """Effective PeerAuthentication mode for the workload: a workload selector beats the
    namespace-wide policy, which beats the mesh-wide one in the root namespace."""
    pas = inv.of_kind("PeerAuthentication")
    for candidates in (
        [p for p in pas if p.namespace == w.namespace and _selects(p, w)],
        [p for p in pas if p.namespace == w.namespace and not p.spec.get("selector")],
        [p for p in pas if p.namespace == ROOT_NAMESPACE and not p.spec.get("selector")],
    ):
        for pa in candidates:
            mode = (pa.spec.get("mtls") or {}).get("mode")
            if mode and mode != "UNSET":
                return str(mode)
    return "PERMISSIVE"


def _selects(policy: K8sObject, w: Workload) -> bool:
    selector = policy.spec.get("selector")
    return isinstance(selector, dict) and matches(selector, w.pod_labels)


def principal(w: Workload) -> str:
    sa = w.pod_spec.get("serviceAccountName") or w.pod_spec.get("serviceAccount") or "default"
    return f"cluster.local/ns/{w.namespace}/sa/{sa}"


def wildcard(value: str, patterns: Iterable[Any]) -> bool:
    """Istio string match: exact, ``*``, prefix ``abc*`` or suffix ``*abc``."""
    for raw in patterns:
        p = str(raw)
        if p == "*" or p == value:
            return True
        if p.endswith("*") and value.startswith(p[:-1]):
            return True
        if p.startswith("*") and value.endswith(p[1:]):
            return True
    return False


def allow_policies(inv: Inventory, w: Workload) -> list[K8sObject]:
    """ALLOW policies that apply to the workload (namespace, selector, or mesh-wide root)."""
    return [
        ap
        for ap in inv.of_kind("AuthorizationPolicy")
        if ap.spec.get("action", "ALLOW") == "ALLOW"
        and ap.spec.get("rules")
        and (
            (ap.namespace == w.namespace and (not ap.spec.get("selector") or _selects(ap, w)))
            or (ap.namespace == ROOT_NAMESPACE and not ap.spec.get("selector"))
        )
    ]


@dataclass(frozen=True)
class Request:
    principal: str
    namespace: str
    port: int
    path: str | None = None  # a route prefix ending in ``*`` or an exact path; None: any


def admits(ap: K8sObject, req: Request) -> bool:
    return any(_rule_admits(rule, req) for rule in ap.spec.get("rules") or [])


def _rule_admits(rule: dict[str, Any], req: Request) -> bool:
    sources = [f.get("source") or {} for f in rule.get("from") or []]
    if sources and not any(_source_admits(s, req) for s in sources):
        return False
    operations = [t.get("operation") or {} for t in rule.get("to") or []]
    return not operations or any(_operation_admits(o, req) for o in operations)


def _source_admits(source: dict[str, Any], req: Request) -> bool:
    if "principals" in source and not wildcard(req.principal, source["principals"]):
        return False
    return "namespaces" not in source or wildcard(req.namespace, source["namespaces"])


def _operation_admits(op: dict[str, Any], req: Request) -> bool:
    if "ports" in op and str(req.port) not in [str(p) for p in op["ports"]]:
        return False
    if "paths" not in op:
        return True
    if req.path is None:
        return False  # a rule with paths only matches HTTP requests
    return _path_covered(req.path, [str(p) for p in op["paths"]])


def _path_covered(path: str, patterns: list[str]) -> bool:
    """A route prefix (``/api/*``) is covered by ``*`` or a pattern prefix of it; an exact
    path by any matching pattern."""
    if path.endswith("*"):
        stem = path[:-1]
        return any(p == "*" or (p.endswith("*") and stem.startswith(p[:-1])) for p in patterns)
    return wildcard(path, patterns)
