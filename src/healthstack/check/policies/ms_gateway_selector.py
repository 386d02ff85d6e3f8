"""HS-MS-004: each Gateway's selector matches gateway pods.

The gateway pods live in istio-system, which Istio's charts install outside our manifests, so a
selector is satisfied by the standard ingress/egress gateway labels or by pods in the set.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.istio import STANDARD_GATEWAY_LABELS
from healthstack.check.selectors import matches_map


def evaluate(ctx: Context) -> Iterator[Violation]:
    for gw in ctx.inv.of_kind("Gateway"):
        if not gw.api_version.startswith("networking.istio.io/"):
            continue
        selector = gw.spec.get("selector")
        if not selector:
            continue  # an empty selector is Istio's "every gateway" default
        if any(matches_map(selector, labels) for labels in STANDARD_GATEWAY_LABELS):
            continue
        if any(matches_map(selector, w.pod_labels) for w in ctx.inv.workloads):
            continue
        yield Violation(
            gw,
            f"selector {selector} matches no gateway pods (standard labels "
            "istio: ingressgateway / app: istio-ingressgateway, or pods in the set): "
            "no gateway serves its hosts",
            "spec.selector",
        )


CHECK = Check(
    id="HS-MS-004",
    title="Gateway selector matches gateway pods",
    severity=Severity.HIGH,
    scope=("Gateway",),
    references=("HIPAA 164.312(e)(1)", "HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SC-7"),
    remediation="Select the installed gateway (istio: ingressgateway) or deploy gateway pods "
    "carrying the selector's labels.",
    evaluate=evaluate,
    family="service mesh",
)
