"""HS-MS-001: DestinationRule TLS agrees with the destination's PeerAuthentication.

Under STRICT mTLS a client whose DestinationRule says ``DISABLE`` or ``SIMPLE`` sends plaintext
(or one-way TLS) that the server sidecar rejects; ``ISTIO_MUTUAL`` towards pods without a sidecar
sends mesh TLS nobody terminates. Either way the route fails, or is "fixed" by weakening mTLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.istio import destination_pods, injected, mtls_mode
from healthstack.check.policies.mesh import resolve_service


def _modes(dr: K8sObject) -> list[tuple[str, str, str]]:
    """(where, mode, field path) of each TLS setting; port-level settings override the default."""
    policy: dict[str, Any] = dr.spec.get("trafficPolicy") or {}
    found = [("trafficPolicy", _mode(policy), "spec.trafficPolicy.tls.mode")]
    for index, setting in enumerate(policy.get("portLevelSettings") or []):
        port = (setting.get("port") or {}).get("number")
        field = f"spec.trafficPolicy.portLevelSettings.{index}.tls.mode"
        found.append((f"port {port}", _mode(setting), field))
    return [(where, mode, field) for where, mode, field in found if mode != "None"]


def _mode(setting: dict[str, Any]) -> str:
    return str((setting.get("tls") or {}).get("mode"))


def _exact_hosts(ctx: Context) -> set[tuple[str, str]]:
    """(namespace, name) of the Services some DestinationRule names exactly: a more specific
    host wins over a wildcard one, so the wildcard rule does not apply to them."""
    named = (
        resolve_service(ctx.inv, dr.namespace, str(dr.spec.get("host", "")))
        for dr in ctx.inv.of_kind("DestinationRule")
        if not str(dr.spec.get("host", "")).startswith("*")
    )
    return {(svc.namespace, svc.name) for svc in named if svc is not None}


def _pods(ctx: Context, dr: K8sObject) -> list[Workload]:
    host = str(dr.spec.get("host", ""))
    if not host.startswith("*"):
        return destination_pods(ctx.inv, dr)
    # A wildcard host (``*.local``, ``*.app.svc.cluster.local``, ``*``) reaches every Service
    # whose FQDN ends with its suffix and that no exact-host rule claims.
    exact, found = _exact_hosts(ctx), {}
    for svc in ctx.inv.of_kind("Service"):
        fqdn = f"{svc.name}.{svc.namespace}.svc.cluster.local"
        if (svc.namespace, svc.name) in exact or not fqdn.endswith(host[1:]):
            continue
        for w in ctx.inv.pods_selected(svc.namespace, svc.spec.get("selector"), plain=True):
            found[w.key] = w
    return list(found.values())


def evaluate(ctx: Context) -> Iterator[Violation]:
    for dr in ctx.inv.of_kind("DestinationRule"):
        pods = _pods(ctx, dr)
        for where, mode, field in _modes(dr):
            for w in pods:
                if injected(w) and mode in ("DISABLE", "SIMPLE", "MUTUAL"):
                    if mtls_mode(ctx.inv, w) == "STRICT":
                        yield Violation(
                            dr,
                            f"{where} tls mode {mode} towards {w.key}, whose sidecar requires "
                            "STRICT mTLS: requests are rejected (use ISTIO_MUTUAL)",
                            field,
                        )
                elif not injected(w) and mode == "ISTIO_MUTUAL":
                    yield Violation(
                        dr,
                        f"{where} tls mode ISTIO_MUTUAL towards {w.key}, which has no "
                        "sidecar to terminate mesh TLS (use DISABLE and a NetworkPolicy)",
                        field,
                    )


CHECK = Check(
    id="HS-MS-001",
    title="DestinationRule TLS mode matches the destination's mTLS",
    severity=Severity.HIGH,
    scope=("DestinationRule", "PeerAuthentication", "Service"),
    references=(
        "HIPAA 164.312(e)(1)",
        "HIPAA 164.312(e)(2)(ii)",
        "NIST SP 800-53 SC-8(1)",
        "NIST SP 800-207 tenet 2",
    ),
    remediation="Use tls.mode ISTIO_MUTUAL towards sidecar pods under STRICT mTLS, and DISABLE "
    "only towards pods outside the mesh.",
    evaluate=evaluate,
    family="service mesh",
)
