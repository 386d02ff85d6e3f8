"""HS-MS-001: DestinationRule TLS agrees with the destination's PeerAuthentication.

Under STRICT mTLS a client whose DestinationRule says ``DISABLE`` or ``SIMPLE`` sends plaintext
(or one-way TLS) that the server sidecar rejects; ``ISTIO_MUTUAL`` towards pods without a sidecar
sends mesh TLS nobody terminates. Either way the route fails, or is "fixed" by weakening mTLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.istio import destination_pods, injected, mtls_mode


def _modes(dr: K8sObject) -> list[tuple[str, str]]:
    policy: dict[str, Any] = dr.spec.get("trafficPolicy") or {}
    found = [("trafficPolicy", str((policy.get("tls") or {}).get("mode")))]
    for setting in policy.get("portLevelSettings") or []:
        port = (setting.get("port") or {}).get("number")
        found.append((f"port {port}", str((setting.get("tls") or {}).get("mode"))))
    return [(where, mode) for where, mode in found if mode != "None"]


def evaluate(ctx: Context) -> Iterator[Violation]:
    for dr in ctx.inv.of_kind("DestinationRule"):
        pods = destination_pods(ctx.inv, dr)
        for where, mode in _modes(dr):
            for w in pods:
                if injected(w) and mode in ("DISABLE", "SIMPLE", "MUTUAL"):
                    if mtls_mode(ctx.inv, w) == "STRICT":
                        yield Violation(
                            dr,
                            f"{where} tls mode {mode} towards {w.key}, whose sidecar requires "
                            "STRICT mTLS: requests are rejected (use ISTIO_MUTUAL)",
                        )
                elif not injected(w) and mode == "ISTIO_MUTUAL":
                    yield Violation(
                        dr,
                        f"{where} tls mode ISTIO_MUTUAL towards {w.key}, which has no "
                        "sidecar to terminate mesh TLS (use DISABLE and a NetworkPolicy)",
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
