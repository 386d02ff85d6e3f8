"""Reachability intent inferred from the stack's own objects when no ``--intent`` is given.

Allowed flows: the ingress gateway to each pod a gateway-bound VirtualService routes to (target
port); Prometheus to each monitored port; each workload to the databases its configuration points
at; workloads to the internet on a ServiceEntry's ports when their configuration names one of
its hosts (and CloudNativePG clusters with an object-store backup on 443); every pod to DNS, and
sidecar pods to istiod. Denied flows: a database port from anyone but its clients, judged on the database's
own ingress rule (a pod the rule admits is an intruder even if its own egress is closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from healthstack.check.intent import Flow, Intent
from healthstack.check.inventory import DATABASE_PORTS, Inventory, Workload
from healthstack.check.model import MALFORMED
from healthstack.check.reachability import Port
from healthstack.check.selectors import matches

INFERRED = "<inferred intent>"
# Env names that say "this process talks to the database" even when the URL is in a Secret file.
_DB_ENV = re.compile(r"^(DATABASE_URL|DB_HOST|DB_URL|PGHOST|POSTGRES_HOST)(_FILE)?$")
DNS = (Port(53, "UDP"), Port(53, "TCP"))
ISTIOD = Port(15012, "TCP")


def _named_port(w: Workload, target: Any) -> int | None:
    for c in w.containers:
        for p in c.get("ports") or []:
            if str(p.get("name")) == str(target):
                return int(p["containerPort"])
    return target if isinstance(target, int) else None


def _service_pods(inv: Inventory, namespace: str, host: str) -> tuple[Any, list[Workload]]:
    parts = host.split(".")
    ns = parts[1] if len(parts) > 1 and parts[1] != "svc" else namespace
    svc = inv.get("Service", ns, parts[0])
    if svc is None:
        return None, []
    return svc, inv.pods_selected(ns, svc.spec.get("selector"), plain=True)


def _gateway_flows(inv: Inventory) -> Iterator[Flow]:
    for vs in inv.of_kind("VirtualService"):
        if all(g == "mesh" for g in vs.spec.get("gateways") or ["mesh"]):
            continue
        for http in vs.spec.get("http") or []:
            for target in http.get("route") or []:
                dest = target.get("destination") or {}
                svc, pods = _service_pods(inv, vs.namespace, str(dest.get("host", "")))
                wanted = (dest.get("port") or {}).get("number")
                for sp in svc.spec.get("ports") or [] if svc is not None else []:
                    if wanted not in (None, sp.get("port")):
                        continue
                    for w in pods:
                        number = _named_port(w, sp.get("targetPort", sp.get("port")))
                        if number is not None:
                            yield Flow("ingressgateway", w.key, Port(number), True, 0)


def _monitor_flows(inv: Inventory) -> Iterator[Flow]:
    for mon in inv.of_kind("ServiceMonitor"):
        namespaces = (mon.spec.get("namespaceSelector") or {}).get("matchNames") or [mon.namespace]
        for svc in inv.of_kind("Service"):
            if svc.namespace not in namespaces or not matches(mon.spec.get("selector"), svc.labels):
                continue
            for ep in mon.spec.get("endpoints") or []:
                sp = next(
                    (p for p in svc.spec.get("ports") or [] if p.get("name") == ep.get("port")),
                    None,
                )
                for w in inv.pods_selected(svc.namespace, svc.spec.get("selector"), plain=True):
                    number = sp and _named_port(w, sp.get("targetPort", sp.get("port")))
                    if number:
                        yield Flow("prometheus", w.key, Port(number), True, 0)
    for mon in inv.of_kind("PodMonitor"):
        for w in inv.pods_selected(mon.namespace, mon.spec.get("selector")):
            for ep in mon.spec.get("podMetricsEndpoints") or []:
                number = _named_port(w, ep.get("port"))
                if number:
                    yield Flow("prometheus", w.key, Port(number), True, 0)


def _config_text(inv: Inventory, w: Workload) -> str:
    """Env names and values plus the ConfigMap data the pod reads (envFrom, configMapKeyRef,
    mounted ConfigMaps), to look for database hosts in."""
    parts: list[str] = []

    def data(name: Any) -> dict[str, Any]:
        cm = inv.get("ConfigMap", w.namespace, str(name))
        return (cm.doc.get("data") or {}) if cm is not None else {}

    for c in w.all_containers:
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("configMapKeyRef") or {}
            value = data(ref.get("name")).get(str(ref.get("key")), "") if ref else e.get("value")
            parts.append(f"{e.get('name')}={value or ''}")
        for src in c.get("envFrom") or []:
            parts += [
                f"{k}={v}" for k, v in data((src.get("configMapRef") or {}).get("name")).items()
            ]
    for volume in w.pod_spec.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("configMap"):
            parts += [f"{k}={v}" for k, v in data(volume["configMap"].get("name")).items()]
    return "\n".join(parts)


def _database_clients(inv: Inventory, db: Workload) -> list[Workload]:
    hosts = {s.name for s in inv.services_for(db)}
    if db.synthetic:
        hosts |= {f"{db.name}-rw", f"{db.name}-ro", f"{db.name}-r"}
    clients = []
    for w in inv.workloads:
        if w is db or w.is_database:
            continue
        text = _config_text(inv, w)
        if w.namespace != db.namespace:
            # From another namespace the host must name the database's namespace.
            if any(
                re.search(rf"\b{re.escape(h)}\.{re.escape(db.namespace)}\b", text) for h in hosts
            ):
                clients.append(w)
            continue
        names = [line.split("=", 1)[0] for line in text.splitlines()]
        if any(re.search(rf"\b{re.escape(h)}\b", text) for h in hosts) or any(
            _DB_ENV.match(n) for n in names
        ):
            clients.append(w)
    return clients


def _database_flows(inv: Inventory) -> Iterator[Flow]:
    for db in inv.workloads:
        if not db.is_database:
            continue
        clients = _database_clients(inv, db)
        ports = {
            p["containerPort"]
            for c in db.containers
            for p in c.get("ports") or []
            if p.get("containerPort") in DATABASE_PORTS
        }
        for number in sorted(ports):
            for client in clients:
                yield Flow(client.key, db.key, Port(number), True, 0)
            excluded = tuple(c.key for c in clients)
            yield Flow("*", db.key, Port(number), False, 0, excluded, ingress_only=True)


def _egress_flows(inv: Inventory) -> Iterator[Flow]:
    for w in inv.workloads:
        if not w.synthetic:
            for port in DNS:
                yield Flow(w.key, "dns", port, True, 0)
        if w.injected:
            yield Flow(w.key, "istiod", ISTIOD, True, 0)
        if w.synthetic and (w.obj.spec.get("backup") or {}).get("barmanObjectStore"):
            yield Flow(w.key, "internet", Port(443), True, 0)
    for se in inv.of_kind("ServiceEntry"):
        if se.spec.get("location") != "MESH_EXTERNAL":
            continue
        hosts = [str(h) for h in se.spec.get("hosts") or [] if not str(h).startswith("*")]
        for w in inv.workloads:
            if w.namespace != se.namespace or not w.injected or w.is_database:
                continue
            # Only the workloads whose configuration names one of the hosts need it.
            if any(h in _config_text(inv, w) for h in hosts):
                for p in se.spec.get("ports") or []:
                    if isinstance(p.get("number"), int):
                        yield Flow(w.key, "internet", Port(p["number"]), True, 0)


def infer_intent(inv: Inventory) -> Intent:
    flows: list[Flow] = []
    for source in (_gateway_flows, _monitor_flows, _database_flows, _egress_flows):
        try:
            flows += list(source(inv))
        except MALFORMED:
            continue  # a malformed object (HS-SC-001 names it) must not hide the other flows
    unique = list(dict.fromkeys(flows))
    return Intent(INFERRED, tuple(unique), None, inferred=True)
