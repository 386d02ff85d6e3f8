"""HS-CO-004: ServiceMonitors/PodMonitors select something exposing the named port, and
Prometheus can reach it through the NetworkPolicies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation, container_port_names
from healthstack.check.reachability import Port
from healthstack.check.selectors import matches


def _namespaces(monitor: K8sObject) -> list[str]:
    wanted = (monitor.spec.get("namespaceSelector") or {}).get("matchNames")
    return [str(n) for n in wanted] if wanted else [monitor.namespace]


def service_targets(
    ctx: Context, mon: K8sObject, ep: dict[str, Any]
) -> Iterator[tuple[Workload, int] | str]:
    services = [
        s
        for s in ctx.inv.of_kind("Service")
        if s.namespace in _namespaces(mon) and matches(mon.spec.get("selector"), s.labels)
    ]
    if not services:
        yield f"selector matches no Service (by Service labels) in {_namespaces(mon)}"
    for svc in services:
        sp = next((p for p in svc.spec.get("ports") or [] if p.get("name") == ep.get("port")), None)
        if sp is None:
            yield f"{svc.ref} has no port named {ep.get('port')!r}"
            continue
        for w in ctx.inv.pods_selected(svc.namespace, svc.spec.get("selector"), plain=True):
            target = sp.get("targetPort", sp.get("port"))
            number = container_port_names(w.containers).get(str(target), target)
            yield (w, int(number)) if isinstance(number, int) else f"{svc.ref} bad targetPort"


def _pod_targets(
    ctx: Context, mon: K8sObject, ep: dict[str, Any]
) -> Iterator[tuple[Workload, int] | str]:
    pods = [
        w for ns in _namespaces(mon) for w in ctx.inv.pods_selected(ns, mon.spec.get("selector"))
    ]
    if not pods:
        yield f"selector matches no pod in {_namespaces(mon)}"
    for w in pods:
        number = container_port_names(w.containers).get(str(ep.get("port")))
        yield (w, number) if number else f"{w.key} declares no port named {ep.get('port')!r}"


def evaluate(ctx: Context) -> Iterator[Violation]:
    prometheus = ctx.net.by_key("prometheus")
    for mon in ctx.inv.of_kind("ServiceMonitor", "PodMonitor"):
        service = mon.kind == "ServiceMonitor"
        for ep in mon.spec.get("endpoints" if service else "podMetricsEndpoints") or []:
            finder = service_targets if service else _pod_targets
            for target in finder(ctx, mon, ep):
                if isinstance(target, str):
                    yield Violation(mon, f"endpoint port {ep.get('port')!r}: {target}")
                    continue
                w, number = target
                dst = ctx.net.by_key(w.key)
                if prometheus is None or dst is None:
                    continue
                port = next((p for p in dst.ports if p.number == number), Port(number))
                verdict = ctx.net.verdict(prometheus, dst, port)
                if not verdict.allowed:
                    yield Violation(
                        verdict.fix_target or mon,
                        f"{mon.ref}: Prometheus (monitoring) cannot reach {w.key}:{number}"
                        f" {ep.get('path', '/metrics')}: {verdict.ingress}",
                    )


CHECK = Check(
    id="HS-CO-004",
    title="ServiceMonitor/PodMonitor targets exist and Prometheus can scrape them",
    severity=Severity.MEDIUM,
    scope=("ServiceMonitor", "PodMonitor", "Service", "NetworkPolicy"),
    references=("HIPAA 164.312(b)", "NIST SP 800-53 SI-4", "NIST SP 800-53 AU-6"),
    remediation="Label the Service as the monitor selects, name the metrics port, and allow "
    "ingress from the monitoring namespace (kubernetes.io/metadata.name: monitoring) "
    "on that port.",
    evaluate=evaluate,
    family="consistency",
)
