"""HS-RI-004: a pod's ``serviceAccountName`` names a ServiceAccount the stack declares.

A misspelt account is refused at admission ("serviceaccount not found"): the workload never
starts, and the Istio identity its AuthorizationPolicies name never exists. Judged only in
namespaces where the manifests declare ServiceAccounts (elsewhere they come from outside).
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, pod_path


def evaluate(ctx: Context) -> Iterator[Violation]:
    declared = {(sa.namespace, sa.name) for sa in ctx.inv.of_kind("ServiceAccount")}
    managed = {ns for ns, _ in declared}
    for w in ctx.inv.workloads:
        name = w.pod_spec.get("serviceAccountName") or w.pod_spec.get("serviceAccount")
        if w.synthetic or not name or name == "default" or w.namespace not in managed:
            continue
        if (w.namespace, str(name)) not in declared:
            yield Violation(
                w.obj,
                f"serviceAccountName {name!r} names no ServiceAccount in {w.namespace}: the pods "
                "are refused at admission",
                f"{pod_path(w)}.serviceAccountName",
            )


CHECK = Check(
    id="HS-RI-004",
    title="Pods run as a ServiceAccount the stack declares",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ServiceAccount"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "HIPAA 164.312(a)(1)", "NIST SP 800-53 CM-6"),
    remediation="Set serviceAccountName to a ServiceAccount declared in the namespace (or add "
    "the ServiceAccount).",
    evaluate=evaluate,
    family="consistency",
)
