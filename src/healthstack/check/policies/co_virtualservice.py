"""HS-CO-005: VirtualService hosts are served by its Gateways; destinations are real Services,
ports and DestinationRule subsets."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.mesh import destinations, http_routes, resolve_service


def _gateway(ctx: Context, vs: K8sObject, ref: str) -> K8sObject | None:
    ns, _, name = ref.rpartition("/")
    return ctx.inv.get("Gateway", ns or vs.namespace, name)


def _gateway_hosts(gw: K8sObject) -> list[str]:
    hosts = [str(h) for s in gw.spec.get("servers") or [] for h in s.get("hosts") or []]
    return [h.split("/", 1)[-1] for h in hosts]  # drop "namespace/" prefixes


def _check_gateways(ctx: Context, vs: K8sObject) -> Iterator[Violation]:
    for ref in vs.spec.get("gateways") or []:
        if ref == "mesh":
            continue
        gw = _gateway(ctx, vs, str(ref))
        if gw is None:
            yield Violation(vs, f"gateway {ref!r} does not exist in the set")
            continue
        for host in vs.spec.get("hosts") or []:
            if not any(fnmatch.fnmatch(str(host), pattern) for pattern in _gateway_hosts(gw)):
                yield Violation(vs, f"host {host!r} is not served by {gw.ref}")


def _subsets(ctx: Context, svc: K8sObject) -> set[str]:
    """Subset names the DestinationRules for the Service define."""
    return {
        str(subset.get("name"))
        for dr in ctx.inv.of_kind("DestinationRule")
        if resolve_service(ctx.inv, dr.namespace, str(dr.spec.get("host", ""))) is svc
        for subset in dr.spec.get("subsets") or []
        if isinstance(subset, dict)
    }


def evaluate(ctx: Context) -> Iterator[Violation]:
    for vs in ctx.inv.of_kind("VirtualService"):
        yield from _check_gateways(ctx, vs)
    for route in http_routes(ctx.inv):
        for dest in destinations(route):
            host = str(dest.get("host", ""))
            svc = resolve_service(ctx.inv, route.vs.namespace, host)
            if svc is None:
                yield Violation(
                    route.vs, f"{route.label} destination {host!r} is not a Service in the set"
                )
                continue
            subset = dest.get("subset")
            if subset is not None and str(subset) not in _subsets(ctx, svc):
                # Envoy has no cluster for it: every request on the route gets a 503 (NR).
                yield Violation(
                    route.vs,
                    f"{route.label} destination subset {subset!r} is defined by no "
                    f"DestinationRule for {svc.ref}",
                )
            number = (dest.get("port") or {}).get("number")
            ports = [p.get("port") for p in svc.spec.get("ports") or []]
            if number is not None and number not in ports:
                yield Violation(
                    route.vs,
                    f"{route.label} destination port {number} is not a port of {svc.ref} {ports}",
                )


CHECK = Check(
    id="HS-CO-005",
    title="VirtualService hosts are on its Gateway and destinations exist",
    severity=Severity.HIGH,
    scope=("VirtualService", "Gateway", "Service"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CM-6"),
    remediation="List the VirtualService hosts on the Gateway's servers and route to an "
    "existing Service name, port and DestinationRule subset.",
    evaluate=evaluate,
    family="consistency",
)
