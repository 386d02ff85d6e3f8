"""HS-ZT-006: mutual TLS is STRICT for every namespace with sidecar workloads."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.zt_default_deny import anchor

ROOT_NAMESPACE = "istio-system"


def _weak(pa: K8sObject) -> list[str]:
    modes = [str((pa.spec.get("mtls") or {}).get("mode", "UNSET"))]
    modes += [str(v.get("mode")) for v in (pa.spec.get("portLevelMtls") or {}).values()]
    return [m for m in modes if m in ("PERMISSIVE", "DISABLE")]


def _strict_for(ctx: Context, ns: str) -> bool:
    for pa in ctx.inv.of_kind("PeerAuthentication"):
        in_scope = pa.namespace in (ns, ROOT_NAMESPACE) and not pa.spec.get("selector")
        if in_scope and (pa.spec.get("mtls") or {}).get("mode") == "STRICT":
            return True
    return False


def evaluate(ctx: Context) -> Iterator[Violation]:
    for pa in ctx.inv.of_kind("PeerAuthentication"):
        weak = _weak(pa)
        if weak:
            yield Violation(pa, f"mTLS mode {', '.join(weak)} accepts plaintext", "spec.mtls")
    meshed = sorted(
        {w.namespace for w in ctx.inv.workloads if any(c.get("_injected") for c in w.containers)}
    )
    for ns in meshed:
        if ns in ctx.phi_namespaces() and not _strict_for(ctx, ns):
            yield Violation(
                anchor(ctx, ns),
                f"namespace {ns}: no PeerAuthentication with mtls "
                "STRICT (Istio defaults to PERMISSIVE)",
            )


CHECK = Check(
    id="HS-ZT-006",
    title="PeerAuthentication enforces STRICT mTLS",
    severity=Severity.CRITICAL,
    scope=("PeerAuthentication", "Namespace"),
    references=(
        "HIPAA 164.312(e)(1)",
        "HIPAA 164.312(e)(2)(ii)",
        "NIST SP 800-207 tenet 2",
        "NIST SP 800-53 SC-8(1)",
    ),
    remediation="Add a namespace-wide PeerAuthentication with spec.mtls.mode: STRICT.",
    evaluate=evaluate,
    family="zero trust",
)
