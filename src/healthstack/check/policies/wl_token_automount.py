"""HS-WL-006: pods do not get a Kubernetes API token they do not need."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, long_running, pod_path


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in long_running(ctx):
        if w.pod_spec.get("automountServiceAccountToken") is not False:
            yield Violation(
                w.obj,
                "pod template does not set automountServiceAccountToken: false",
                f"{pod_path(w)}.automountServiceAccountToken",
            )


CHECK = Check(
    id="HS-WL-006",
    title="Service account token is not automounted",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "DaemonSet"),
    references=("HIPAA 164.312(a)(1)", "NIST SP 800-53 AC-6", "CIS Kubernetes Benchmark 5.1.6"),
    remediation="Set automountServiceAccountToken: false in the pod spec.",
    evaluate=evaluate,
    family="workload hardening",
)
