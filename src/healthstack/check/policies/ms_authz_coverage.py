"""HS-MS-006: under allow-nothing, ALLOW AuthorizationPolicies admit the flows the stack needs.

Needed flows: the ingress gateway calling each workload a gateway-bound VirtualService routes to,
on the routed paths and target port; each workload the NetworkPolicies let reach a database
port calling that database; and Prometheus (any of the usual accounts in its namespace) scraping
a ServiceMonitor's endpoint on its path and target port. PodMonitors are left out: the one the
stack has scrapes Envoy's own port, which AuthorizationPolicies do not guard. A flow no ALLOW rule admits is denied (403 or a reset) at runtime.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import (
    DATABASE_PORTS,
    Check,
    Context,
    Violation,
    container_port_names,
)
from healthstack.check.policies.co_monitor_targets import service_targets
from healthstack.check.policies.istio import (
    INGRESS_PRINCIPAL,
    PROMETHEUS_NAMESPACE,
    ROOT_NAMESPACE,
    Request,
    admits,
    allow_policies,
    injected,
    principal,
)
from healthstack.check.policies.mesh import Route, destinations, http_routes, resolve_service
from healthstack.check.reachability import Port
from healthstack.check.selectors import matches_map

# Istio's other documented ingress installs (helm chart "gateway" in namespace istio-ingress).
GATEWAY_INSTALLS = (
    ("cluster.local/ns/istio-ingress/sa/istio-ingressgateway", "istio-ingress"),
    ("cluster.local/ns/istio-ingress/sa/istio-ingress", "istio-ingress"),
)


def _allow_nothing(ctx: Context, ns: str) -> bool:
    return any(
        ap.namespace in (ns, ROOT_NAMESPACE) and ap.spec == {}
        for ap in ctx.inv.of_kind("AuthorizationPolicy")
    )


def _guarded(ctx: Context, w: Workload) -> bool:
    return injected(w) and _allow_nothing(ctx, w.namespace)


def _paths(route: Route) -> list[str]:
    """Paths a route matches: ``prefix*`` or exact; a match without a uri matches every path;
    regex matches are not judged (no flow)."""
    uris = [m.get("uri") or {} for m in route.http.get("match") or []] or [{}]
    found = []
    for uri in uris:
        if "prefix" in uri:
            found.append(str(uri["prefix"]) + "*")
        elif "exact" in uri:
            found.append(str(uri["exact"]))
        elif "regex" not in uri:
            found.append("/*")
    return found


def _routed(ctx: Context, route: Route) -> Iterator[tuple[Workload, int]]:
    for dest in destinations(route):
        svc = resolve_service(ctx.inv, route.vs.namespace, str(dest.get("host", "")))
        if svc is None:
            continue
        wanted = (dest.get("port") or {}).get("number")
        ports = svc.spec.get("ports") or []
        sp = next((p for p in ports if wanted in (None, p.get("port"))), None)
        if sp is None:
            continue
        target = sp.get("targetPort", sp.get("port"))
        for w in ctx.inv.pods_selected(svc.namespace, svc.spec.get("selector"), plain=True):
            number = container_port_names(w.containers).get(str(target), target)
            if isinstance(number, int):
                yield w, number


def _gateway_identities(ctx: Context, w: Workload, port: int) -> list[tuple[str, str]]:
    """(principal, namespace) the ingress gateway may have: gateway pods deployed with the
    stack, Istio's default install in istio-system, and, only when the NetworkPolicies do not
    admit that one, the documented istio-ingress install."""
    found = [(INGRESS_PRINCIPAL, ROOT_NAMESPACE)]
    gateway, dst = ctx.net.by_key("ingressgateway"), ctx.net.by_key(w.key)
    target = next((p for p in dst.ports if p.number == port), Port(port)) if dst else Port(port)
    if gateway is None or dst is None or not ctx.net.verdict(gateway, dst, target).allowed:
        found += GATEWAY_INSTALLS
    selectors = [g.spec.get("selector") for g in ctx.inv.of_kind("Gateway")]
    for pod in ctx.inv.workloads:
        if any(s and matches_map(s, pod.pod_labels) for s in selectors):
            found.append((principal(pod), pod.namespace))
    return found


def _gateway_flows(ctx: Context) -> Iterator[tuple[K8sObject, Workload, list[Request]]]:
    for route in http_routes(ctx.inv):
        if all(g == "mesh" for g in route.vs.spec.get("gateways") or ["mesh"]):
            continue
        for w, port in _routed(ctx, route):
            identities = _gateway_identities(ctx, w, port)
            for path in _paths(route):
                yield route.vs, w, [Request(p, ns, port, path) for p, ns in identities]


def _database_flows(ctx: Context) -> Iterator[tuple[K8sObject, Workload, list[Request]]]:
    for db in ctx.inv.workloads:
        endpoint = ctx.net.by_key(db.key)
        if endpoint is None or not _guarded(ctx, db):
            continue
        for port in [p for p in endpoint.ports if p.number in DATABASE_PORTS]:
            for client in _clients(ctx, db, port):
                yield db.obj, db, [Request(principal(client), client.namespace, port.number)]


# The ServiceAccounts Prometheus runs as in the common installs (kube-prometheus, the
# kube-prometheus-stack chart, the prometheus chart); the stack does not declare which.
PROMETHEUS_ACCOUNTS = ("prometheus-k8s", "kube-prometheus-stack-prometheus", "prometheus-server")


def _scrape_flows(ctx: Context) -> Iterator[tuple[K8sObject, Workload, list[Request]]]:
    for mon in ctx.inv.of_kind("ServiceMonitor"):
        for ep in mon.spec.get("endpoints") or []:
            path = str(ep.get("path") or "/metrics")
            for target in service_targets(ctx, mon, ep):
                if isinstance(target, str) or not injected(target[0]):
                    continue
                w, port = target
                principals = [
                    f"cluster.local/ns/{PROMETHEUS_NAMESPACE}/sa/{sa}" for sa in PROMETHEUS_ACCOUNTS
                ]
                yield mon, w, [Request(p, PROMETHEUS_NAMESPACE, port, path) for p in principals]


def _clients(ctx: Context, db: Workload, port: Port) -> Iterator[Workload]:
    dst = ctx.net.by_key(db.key)
    for w in ctx.inv.workloads:
        src = ctx.net.by_key(w.key)
        if w is db or src is None or dst is None or w.namespace != db.namespace:
            continue
        if any(p.number in DATABASE_PORTS for p in src.ports) or not injected(w):
            continue
        if ctx.net.verdict(src, dst, port).allowed:
            yield w


def evaluate(ctx: Context) -> Iterator[Violation]:
    for anchor, w, requests in [*_gateway_flows(ctx), *_database_flows(ctx), *_scrape_flows(ctx)]:
        if not _guarded(ctx, w):
            continue
        policies = allow_policies(ctx.inv, w)
        req = requests[0]
        if not any(admits(ap, r) for ap in policies for r in requests):
            path = f" path {req.path}" if req.path else ""
            names = ", ".join(p.ref for p in policies) or "none"
            yield Violation(
                policies[0] if policies else anchor,
                f"no ALLOW rule admits {req.principal} -> {w.key} port {req.port}{path} "
                f"under allow-nothing (ALLOW policies for the workload: {names})",
            )


CHECK = Check(
    id="HS-MS-006",
    title="AuthorizationPolicies admit routed paths and needed flows",
    severity=Severity.HIGH,
    scope=("AuthorizationPolicy", "VirtualService", "NetworkPolicy"),
    references=("HIPAA 164.312(a)(1)", "HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 AC-3"),
    remediation="Add an ALLOW rule for the caller's principal on the port (and routed paths), "
    "or remove the route or flow that is not needed.",
    evaluate=evaluate,
    family="service mesh",
)
