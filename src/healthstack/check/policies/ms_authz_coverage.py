"""HS-MS-007: under allow-nothing, ALLOW AuthorizationPolicies admit the flows the stack needs.

Needed flows: the ingress gateway calling each workload a gateway-bound VirtualService routes to,
on the routed paths and target port; and each workload the NetworkPolicies let reach a database
port calling that database. A flow no ALLOW rule admits is denied (403 or a reset) at runtime.
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
from healthstack.check.policies.istio import (
    INGRESS_PRINCIPAL,
    ROOT_NAMESPACE,
    Request,
    admits,
    allow_policies,
    injected,
    principal,
)
from healthstack.check.policies.mesh import Route, destinations, http_routes, resolve_service
from healthstack.check.reachability import Port


def _allow_nothing(ctx: Context, ns: str) -> bool:
    return any(
        ap.namespace in (ns, ROOT_NAMESPACE) and ap.spec == {}
        for ap in ctx.inv.of_kind("AuthorizationPolicy")
    )


def _guarded(ctx: Context, w: Workload) -> bool:
    return injected(w) and _allow_nothing(ctx, w.namespace)


def _paths(route: Route) -> list[str | None]:
    uris = [m.get("uri") or {} for m in route.http.get("match") or []]
    if not uris:
        return ["/*"]
    found: list[str | None] = []
    for uri in uris:
        if "prefix" in uri:
            found.append(str(uri["prefix"]) + "*")
        elif "exact" in uri:
            found.append(str(uri["exact"]))
    return found or [None]


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


def _gateway_flows(ctx: Context) -> Iterator[tuple[K8sObject, Workload, Request]]:
    for route in http_routes(ctx.inv):
        if all(g == "mesh" for g in route.vs.spec.get("gateways") or ["mesh"]):
            continue
        for w, port in _routed(ctx, route):
            for path in _paths(route):
                req = Request(INGRESS_PRINCIPAL, ROOT_NAMESPACE, port, path)
                yield route.vs, w, req


def _database_flows(ctx: Context) -> Iterator[tuple[K8sObject, Workload, Request]]:
    for db in ctx.inv.workloads:
        endpoint = ctx.net.by_key(db.key)
        if endpoint is None or not _guarded(ctx, db):
            continue
        for port in [p for p in endpoint.ports if p.number in DATABASE_PORTS]:
            for client in _clients(ctx, db, port):
                yield db.obj, db, Request(principal(client), client.namespace, port.number)


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
    for anchor, w, req in [*_gateway_flows(ctx), *_database_flows(ctx)]:
        if not _guarded(ctx, w):
            continue
        policies = allow_policies(ctx.inv, w)
        if not any(admits(ap, req) for ap in policies):
            path = f" path {req.path}" if req.path else ""
            names = ", ".join(p.ref for p in policies) or "none"
            yield Violation(
                policies[0] if policies else anchor,
                f"no ALLOW rule admits {req.principal} -> {w.key} port {req.port}{path} "
                f"under allow-nothing (ALLOW policies for the workload: {names})",
            )


CHECK = Check(
    id="HS-MS-007",
    title="AuthorizationPolicies admit routed paths and needed flows",
    severity=Severity.HIGH,
    scope=("AuthorizationPolicy", "VirtualService", "NetworkPolicy"),
    references=("HIPAA 164.312(a)(1)", "HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 AC-3"),
    remediation="Add an ALLOW rule for the caller's principal on the port (and routed paths), "
    "or remove the route or flow that is not needed.",
    evaluate=evaluate,
    family="service mesh",
)
