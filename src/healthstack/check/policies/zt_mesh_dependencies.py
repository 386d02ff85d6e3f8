"""HS-ZT-004: pods can reach DNS over UDP and TCP, and sidecar pods can reach istiod."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.reachability import Port

NEEDS = (("dns", Port(53, "UDP", "dns")), ("dns", Port(53, "TCP", "dns-tcp")))
SIDECAR_NEEDS = (("istiod", Port(15012, "TCP", "grpc-xds")),)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        src = ctx.net.by_key(w.key)
        if src is None or w.synthetic or w.namespace not in ctx.phi_namespaces():
            continue
        injected = any(c.get("_injected") for c in w.containers)
        for alias, port in NEEDS + (SIDECAR_NEEDS if injected else ()):
            dst = ctx.net.by_key(alias)
            assert dst is not None
            verdict = ctx.net.verdict(src, dst, port)
            if not verdict.allowed:
                why = verdict.egress if "no rule" in verdict.egress else verdict.ingress
                yield Violation(
                    verdict.fix_target or w.obj,
                    f"{w.key} cannot reach {alias} ({dst.namespace}) on {port}: {why}",
                )


CHECK = Check(
    id="HS-ZT-004",
    title="Pods reach DNS (UDP and TCP) and sidecars reach istiod",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "NetworkPolicy"),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-207 tenet 2", "NIST SP 800-53 SC-8"),
    remediation="Allow egress to kube-system k8s-app=kube-dns on 53/UDP and 53/TCP and to "
    "istio-system app=istiod on 15012/TCP, selecting namespaces by "
    "kubernetes.io/metadata.name.",
    evaluate=evaluate,
    family="zero trust",
)
