"""HS-SUP-001: a suppression annotation must say why."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

SUPPRESS_PREFIX = "healthstack.io/suppress."


def evaluate(ctx: Context) -> Iterator[Violation]:
    for obj in ctx.inv.objects:
        for key, reason in obj.annotations.items():
            if key.startswith(SUPPRESS_PREFIX) and not reason.strip():
                yield Violation(obj, f"annotation {key} has no reason; the suppression is ignored")


CHECK = Check(
    id="HS-SUP-001",
    title="Suppressions state a reason",
    severity=Severity.MEDIUM,
    scope=("*",),
    references=("HIPAA 164.316(b)(1)", "NIST SP 800-53 CA-7"),
    remediation="Write why the check does not apply as the annotation value, e.g. "
    'healthstack.io/suppress.HS-WL-004: "image built in-cluster, digest pinned by '
    'policy controller".',
    evaluate=evaluate,
    family="meta",
)
