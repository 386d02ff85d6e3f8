"""HS-AV-006: termination grace covers preStop plus the longest request routed to the pod."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, seconds
from healthstack.check.policies.mesh import http_routes, routed_workloads

_SLEEP = re.compile(r"\bsleep\s+(\d+)")


def pre_stop_seconds(container: dict[str, Any]) -> float:
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float((pre_stop["sleep"] or {}).get("seconds", 0))
    command = " ".join(str(a) for a in (pre_stop.get("exec") or {}).get("command") or [])
    found = _SLEEP.search(command)
    return float(found.group(1)) if found else 0.0


def evaluate(ctx: Context) -> Iterator[Violation]:
    for route in http_routes(ctx.inv):
        timeout = seconds(route.http.get("timeout"))
        if timeout is None:
            continue
        for w in routed_workloads(ctx.inv, route):
            grace = float(w.pod_spec.get("terminationGracePeriodSeconds", 30))
            stop = max((pre_stop_seconds(c) for c in w.containers), default=0.0)
            if grace < stop + timeout:
                yield Violation(
                    w.obj,
                    f"terminationGracePeriodSeconds {grace:g} < preStop "
                    f"{stop:g}s + {route.vs.ref} {route.label} timeout "
                    f"{timeout:g}s: in-flight requests are cut at shutdown",
                    _grace_field(w.obj.kind),
                )


def _grace_field(kind: str) -> str:
    return (
        "spec.terminationGracePeriodSeconds"
        if kind == "Pod"
        else ("spec.template.spec.terminationGracePeriodSeconds")
    )


CHECK = Check(
    id="HS-AV-006",
    title="Grace period covers preStop and the route timeout",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "VirtualService"),
    references=("HIPAA 164.312(c)(1)", "HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SC-24"),
    remediation="Set terminationGracePeriodSeconds to at least preStop + the VirtualService "
    "route timeout (+ a few seconds).",
    evaluate=evaluate,
    family="availability",
)
