"""HS-MS-007: the ServiceEntries PHI workloads can see name exact external hosts, over TLS.

``REGISTRY_ONLY`` lets a sidecar reach only the hosts in the registry; a MESH_EXTERNAL
ServiceEntry with ``*`` or ``*.example.com`` registers every host under it, so a PHI workload (or
whoever controls a subdomain) can send data to any of them and the egress lock means nothing.
A plaintext port (HTTP, HTTP2, gRPC) to an external host carries PHI across the internet in the
clear unless a DestinationRule for the host originates TLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation


def _visible_in(se: K8sObject, namespaces: set[str]) -> list[str]:
    """PHI namespaces whose sidecars import the entry (``exportTo`` defaults to every namespace)."""
    export = [str(e) for e in se.spec.get("exportTo") or ["*"]]
    if "*" in export:
        return sorted(namespaces)
    own = [se.namespace] if "." in export else []
    return sorted(namespaces & {*own, *export})


PLAINTEXT = {"HTTP", "HTTP2", "GRPC"}
ORIGINATING = {"SIMPLE", "MUTUAL"}


def _originates_tls(ctx: Context, host: str, port: Any) -> bool:
    """A DestinationRule for the host sets tls SIMPLE/MUTUAL, for every port or this one."""
    for dr in ctx.inv.of_kind("DestinationRule"):
        if str(dr.spec.get("host")) != host:
            continue
        policy = dr.spec.get("trafficPolicy") or {}
        settings = [policy] + [
            s
            for s in policy.get("portLevelSettings") or []
            if (s.get("port") or {}).get("number") == port
        ]
        if any((s.get("tls") or {}).get("mode") in ORIGINATING for s in settings):
            return True
    return False


def _plaintext(ctx: Context, se: K8sObject) -> Iterator[Violation]:
    for index, port in enumerate(se.spec.get("ports") or []):
        if str(port.get("protocol", "")).upper() not in PLAINTEXT:
            continue
        bare = [
            str(h)
            for h in se.spec.get("hosts") or []
            if not _originates_tls(ctx, str(h), port.get("number"))
        ]
        if bare:
            yield Violation(
                se,
                f"port {port.get('number')} is {port.get('protocol')} to external "
                f"{', '.join(bare)} with no DestinationRule originating TLS: PHI leaves in "
                "the clear",
                f"spec.ports.{index}.protocol",
            )


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for se in ctx.inv.of_kind("ServiceEntry"):
        if se.spec.get("location", "MESH_EXTERNAL") != "MESH_EXTERNAL":
            continue
        seen_by = _visible_in(se, phi)
        if seen_by:
            yield from _plaintext(ctx, se)
        for index, host in enumerate(se.spec.get("hosts") or []):
            if seen_by and str(host).startswith("*"):
                yield Violation(
                    se,
                    f"external host {host} is a wildcard visible to PHI namespace(s) "
                    f"{', '.join(seen_by)}: their sidecars may send data to any host it covers",
                    f"spec.hosts.{index}",
                )


CHECK = Check(
    id="HS-MS-007",
    title="External ServiceEntries seen by PHI workloads name exact hosts, over TLS",
    severity=Severity.HIGH,
    scope=("ServiceEntry",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7(5)", "NIST SP 800-207 tenet 6"),
    remediation="List each external host the workload calls (no * or *.domain) on TLS/HTTPS "
    "ports (or originate TLS with a DestinationRule tls.mode SIMPLE), or restrict the entry with "
    'exportTo to namespaces without PHI (e.g. exportTo: ["."] in a non-PHI namespace).',
    evaluate=evaluate,
    family="service mesh",
)
