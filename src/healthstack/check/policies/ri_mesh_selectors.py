"""HS-RI-003: Istio policies with a workload selector select pods; DestinationRule subsets select
pods of their Service.

A typo in a selector does not fail anywhere: a DENY AuthorizationPolicy, a STRICT
PeerAuthentication, a RequestAuthentication or a REGISTRY_ONLY Sidecar whose selector matches
nothing silently protects nothing, and an ALLOW policy that matches nothing admits nobody. A
subset whose labels select no pod of the Service has no endpoints: its route answers 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.istio import ROOT_NAMESPACE, STANDARD_GATEWAY_LABELS
from healthstack.check.policies.mesh import resolve_service
from healthstack.check.selectors import matches

# kind -> the field holding its workload selector ({matchLabels: ...} or {labels: ...}).
SELECTED_KINDS = {
    "AuthorizationPolicy": "selector",
    "PeerAuthentication": "selector",
    "RequestAuthentication": "selector",
    "Telemetry": "selector",
    "Sidecar": "workloadSelector",
    "EnvoyFilter": "workloadSelector",
}


def _label_selector(obj: K8sObject) -> dict[str, Any] | None:
    value = obj.spec.get(SELECTED_KINDS[obj.kind])
    if not isinstance(value, dict):
        return None
    labels = value.get("matchLabels", value.get("labels"))
    return {"matchLabels": labels} if isinstance(labels, dict) and labels else None


def _gateway(selector: dict[str, Any]) -> bool:
    """Selects the Istio gateways' standard labels: those pods come from Istio's charts."""
    labels = selector["matchLabels"].items()
    return any(labels <= standard.items() for standard in STANDARD_GATEWAY_LABELS)


def _policy_selectors(ctx: Context) -> Iterator[Violation]:
    populated = {w.namespace for w in ctx.inv.workloads}
    for kind, field in SELECTED_KINDS.items():
        for obj in ctx.inv.of_kind(kind):
            selector = _label_selector(obj)
            # Only namespaces whose workloads are in the set can be judged (the root namespace's
            # selectors reach every namespace; gateways installed outside the set are unknown).
            if selector is None or obj.namespace not in populated or _gateway(selector):
                continue
            pods = [
                w
                for w in ctx.inv.workloads
                if obj.namespace in (w.namespace, ROOT_NAMESPACE)
                and matches(selector, w.pod_labels)
            ]
            if not pods:
                action = (
                    f" {obj.spec.get('action', 'ALLOW')}" if kind == "AuthorizationPolicy" else ""
                )
                yield Violation(
                    obj,
                    f"{kind}{action} {field} {selector['matchLabels']} matches no pod in "
                    f"{obj.namespace}: it applies to nothing",
                    f"spec.{field}",
                )


def _subsets(ctx: Context) -> Iterator[Violation]:
    for dr in ctx.inv.of_kind("DestinationRule"):
        svc = resolve_service(ctx.inv, dr.namespace, str(dr.spec.get("host", "")))
        if svc is None:
            continue
        pods = ctx.inv.pods_selected(svc.namespace, svc.spec.get("selector"), plain=True)
        for index, subset in enumerate(dr.spec.get("subsets") or []):
            labels = subset.get("labels") if isinstance(subset, dict) else None
            if not (isinstance(labels, dict) and labels and pods):
                continue
            if not any(matches({"matchLabels": labels}, w.pod_labels) for w in pods):
                yield Violation(
                    dr,
                    f"subset {subset.get('name')!r} labels {labels} select no pod of "
                    f"{svc.ref}: routes to it get no endpoints",
                    f"spec.subsets.{index}.labels",
                )


def evaluate(ctx: Context) -> Iterator[Violation]:
    yield from _policy_selectors(ctx)
    yield from _subsets(ctx)


CHECK = Check(
    id="HS-RI-003",
    title="Istio policy selectors and DestinationRule subsets select pods",
    severity=Severity.HIGH,
    scope=(*SELECTED_KINDS, "DestinationRule"),
    references=("HIPAA 164.312(a)(1)", "HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CM-6"),
    remediation="Make the selector's labels those of the workload's pod template (or remove "
    "the selector to cover the namespace), and the subset's labels those of the Service's pods.",
    evaluate=evaluate,
    family="consistency",
)
