"""Istio helpers shared by route checks (not a check itself)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from healthstack.check.inventory import Inventory, Workload
from healthstack.check.model import K8sObject


@dataclass(frozen=True)
class Route:
    vs: K8sObject
    index: int
    http: dict[str, Any]

    @property
    def label(self) -> str:
        return str(self.http.get("name") or f"http[{self.index}]")


def http_routes(inv: Inventory) -> Iterator[Route]:
    for vs in inv.of_kind("VirtualService"):
        for index, http in enumerate(vs.spec.get("http") or []):
            if isinstance(http, dict):
                yield Route(vs, index, http)


def destinations(route: Route) -> Iterator[dict[str, Any]]:
    for target in route.http.get("route") or []:
        dest = target.get("destination") if isinstance(target, dict) else None
        if isinstance(dest, dict):
            yield dest


def resolve_service(inv: Inventory, namespace: str, host: str) -> K8sObject | None:
    """A VirtualService destination host (short, ``svc.ns`` or FQDN) -> the Service object."""
    parts = host.split(".")
    name = parts[0]
    ns = parts[1] if len(parts) > 1 and parts[1] != "svc" else namespace
    return inv.get("Service", ns, name)


def routed_workloads(inv: Inventory, route: Route) -> Iterator[Workload]:
    for dest in destinations(route):
        svc = resolve_service(inv, route.vs.namespace, str(dest.get("host", "")))
        if svc is not None:
            yield from inv.pods_selected(svc.namespace, svc.spec.get("selector"), plain=True)
