"""HS-AV-002: replicas are spread across nodes/zones by a hard rule."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.av_pdb import min_replicas
from healthstack.check.policies.base import Check, Context, Violation, long_running


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in long_running(ctx):
        if w.obj.kind == "DaemonSet" or min_replicas(ctx, w) < 2:
            continue
        spread = w.pod_spec.get("topologySpreadConstraints") or []
        hard_spread = [s for s in spread if s.get("whenUnsatisfiable") == "DoNotSchedule"]
        anti = (w.pod_spec.get("affinity") or {}).get("podAntiAffinity") or {}
        if not hard_spread and not anti.get("requiredDuringSchedulingIgnoredDuringExecution"):
            yield Violation(
                w.obj,
                "no topologySpreadConstraints (DoNotSchedule) nor required "
                "podAntiAffinity: all replicas may land on one node",
            )


CHECK = Check(
    id="HS-AV-002",
    title="Replicas are spread by topology spread or required anti-affinity",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CP-10", "NIST SP 800-53 SC-36"),
    remediation="Add topologySpreadConstraints on kubernetes.io/hostname (and zone) with "
    "whenUnsatisfiable: DoNotSchedule, or required podAntiAffinity.",
    evaluate=evaluate,
    family="availability",
)
