"""HS-ZT-008: Gateways terminate TLS (plain HTTP only to redirect)."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

WEAK_VERSIONS = {"TLSV1_0", "TLSV1_1"}


def evaluate(ctx: Context) -> Iterator[Violation]:
    for gw in ctx.inv.of_kind("Gateway"):
        for index, server in enumerate(gw.spec.get("servers") or []):
            at = f"spec.servers.{index}"
            port = server.get("port") or {}
            protocol, tls = str(port.get("protocol", "")).upper(), server.get("tls") or {}
            where = f"server {port.get('name', port.get('number'))}"
            if protocol in ("HTTP", "HTTP2", "TCP", "GRPC"):
                if not tls.get("httpsRedirect"):
                    yield Violation(gw, f"{where} serves {protocol} without TLS", f"{at}.port")
                continue
            if tls.get("mode") not in ("SIMPLE", "MUTUAL", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"):
                yield Violation(
                    gw, f"{where} has tls.mode {tls.get('mode')!r}, not terminating", f"{at}.tls"
                )
            elif tls.get("mode") in ("SIMPLE", "MUTUAL") and not tls.get("credentialName"):
                yield Violation(gw, f"{where} has no tls.credentialName", f"{at}.tls")
            if tls.get("minProtocolVersion") in WEAK_VERSIONS:
                yield Violation(
                    gw,
                    f"{where} accepts {tls['minProtocolVersion']}",
                    f"{at}.tls.minProtocolVersion",
                )


CHECK = Check(
    id="HS-ZT-008",
    title="Gateway serves TLS",
    severity=Severity.CRITICAL,
    scope=("Gateway",),
    references=(
        "HIPAA 164.312(e)(1)",
        "HIPAA 164.312(e)(2)(ii)",
        "NIST SP 800-53 SC-8(1)",
        "NIST SP 800-207 tenet 2",
    ),
    remediation="Serve HTTPS with tls.mode SIMPLE (or MUTUAL) and a credentialName; let HTTP "
    "servers only redirect (tls.httpsRedirect: true).",
    evaluate=evaluate,
    family="zero trust",
)
