"""HS-PS-002: namespaces holding PHI enforce Pod Security Admission ``restricted``.

An unlabelled namespace enforces ``privileged``; ``baseline`` still admits root containers and
privilege escalation.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

ENFORCE = "pod-security.kubernetes.io/enforce"


def evaluate(ctx: Context) -> Iterator[Violation]:
    for ns in ctx.phi_namespaces():
        obj = ctx.inv.get("Namespace", "default", ns)
        if obj is None:
            continue  # the namespace is managed elsewhere; nothing here to judge
        level = obj.labels.get(ENFORCE, "privileged (unset)")
        if level != "restricted":
            yield Violation(
                obj,
                f"namespace {ns} holds PHI but {ENFORCE} is {level}, not restricted",
                f"metadata.labels.{ENFORCE}",
            )


CHECK = Check(
    id="HS-PS-002",
    title="PHI namespaces enforce Pod Security restricted",
    severity=Severity.HIGH,
    scope=("Namespace",),
    references=("HIPAA 164.312(a)(1)", "NIST SP 800-53 CM-7", "CIS Kubernetes Benchmark 5.2.1"),
    remediation="Label the namespace pod-security.kubernetes.io/enforce: restricted (with "
    "enforce-version pinned).",
    evaluate=evaluate,
    family="pod security",
)
