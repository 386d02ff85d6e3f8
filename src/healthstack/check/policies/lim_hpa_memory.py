"""HS-LIM-008: autoscalers do not scale on memory.

Garbage-collected runtimes (Python, the JVM, Go) keep the memory they once used: a memory target
adds replicas under a burst and never removes them, and the HPA then sits at maxReplicas with no
load. Scale on CPU or on request rate (a custom or external metric).
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def evaluate(ctx: Context) -> Iterator[Violation]:
    for hpa in ctx.inv.of_kind("HorizontalPodAutoscaler"):
        for metric in hpa.spec.get("metrics") or []:
            kind = str(metric.get("type", ""))
            source = metric.get("resource") or metric.get("containerResource") or {}
            if kind in ("Resource", "ContainerResource") and source.get("name") == "memory":
                yield Violation(
                    hpa, "scales on memory, which a garbage-collected runtime holds without load"
                )


CHECK = Check(
    id="HS-LIM-008",
    title="Autoscalers scale on CPU or request rate, not memory",
    severity=Severity.LOW,
    scope=("HorizontalPodAutoscaler",),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SC-5"),
    remediation="Remove the memory metric; scale on CPU utilization or a request-rate metric.",
    evaluate=evaluate,
    family="deployment limits",
)
