"""HS-MS-007: the ServiceEntries PHI workloads can see name exact external hosts.

``REGISTRY_ONLY`` lets a sidecar reach only the hosts in the registry; a MESH_EXTERNAL
ServiceEntry with ``*`` or ``*.example.com`` registers every host under it, so a PHI workload (or
whoever controls a subdomain) can send data to any of them and the egress lock means nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation


def _visible_in(se: K8sObject, namespaces: set[str]) -> list[str]:
    """PHI namespaces whose sidecars import the entry (``exportTo`` defaults to every namespace)."""
    export = [str(e) for e in se.spec.get("exportTo") or ["*"]]
    if "*" in export:
        return sorted(namespaces)
    own = [se.namespace] if "." in export else []
    return sorted(namespaces & {*own, *export})


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for se in ctx.inv.of_kind("ServiceEntry"):
        if se.spec.get("location", "MESH_EXTERNAL") != "MESH_EXTERNAL":
            continue
        seen_by = _visible_in(se, phi)
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
    title="External ServiceEntries seen by PHI workloads name exact hosts",
    severity=Severity.HIGH,
    scope=("ServiceEntry",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7(5)", "NIST SP 800-207 tenet 6"),
    remediation="List each external host the workload calls (no * or *.domain), or restrict the "
    'entry with exportTo to namespaces without PHI (e.g. exportTo: ["."] in a non-PHI '
    "namespace).",
    evaluate=evaluate,
    family="service mesh",
)
