"""HS-MS-009: PHI pods do not route traffic around their sidecar.

The ``traffic.sidecar.istio.io/*`` pod annotations change which connections the sidecar
intercepts. An excluded inbound port is reached without STRICT mTLS or any AuthorizationPolicy;
excluded outbound ports or address ranges leave in the clear and skip ``REGISTRY_ONLY``.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_port_numbers,
    own_containers,
    pod_path,
)

PREFIX = "traffic.sidecar.istio.io/"
EXCLUDES = {
    "excludeInboundPorts": "inbound port(s) {} skip STRICT mTLS and AuthorizationPolicies",
    "excludeOutboundPorts": "outbound port(s) {} leave without mTLS and REGISTRY_ONLY",
    "excludeOutboundIPRanges": "outbound range(s) {} leave without mTLS and REGISTRY_ONLY",
}


def _values(w: Workload, key: str) -> list[str]:
    raw = w.pod_annotations.get(PREFIX + key, "")
    return [v.strip() for v in raw.split(",") if v.strip()]


def _bypasses(w: Workload) -> Iterator[str]:
    for key, text in EXCLUDES.items():
        if values := _values(w, key):
            yield f"{key}: " + text.format(", ".join(values))
    include_ranges = _values(w, "includeOutboundIPRanges")
    if include_ranges and "*" not in include_ranges:
        yield (
            f"includeOutboundIPRanges: only {', '.join(include_ranges)} are intercepted; "
            "every other destination leaves without mTLS and REGISTRY_ONLY"
        )
    include_ports = _values(w, "includeInboundPorts")
    if include_ports and "*" not in include_ports:
        declared = {str(n) for n in container_port_numbers(own_containers(w))}
        if missing := sorted(declared - set(include_ports)):
            yield (
                f"includeInboundPorts leaves out {', '.join(missing)}: reached without STRICT "
                "mTLS and AuthorizationPolicies"
            )


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for w in ctx.inv.workloads:
        if w.synthetic or not w.injected or w.namespace not in phi:
            continue
        for problem in _bypasses(w):
            yield Violation(
                w.obj,
                f"{w.key} {problem}",
                f"{pod_path(w).removesuffix('.spec')}.metadata.annotations",
            )


CHECK = Check(
    id="HS-MS-009",
    title="PHI pods send and receive all traffic through their sidecar",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"),
    references=("HIPAA 164.312(e)(1)", "HIPAA 164.312(a)(1)", "NIST SP 800-207 tenet 2"),
    remediation="Remove the traffic.sidecar.istio.io exclude annotations (and include lists that "
    'are not "*"); reach what needs to stay outside the mesh through a ServiceEntry or a '
    "DestinationRule instead.",
    evaluate=evaluate,
    family="service mesh",
)
