"""HS-SC-001: every object validates against Kubernetes 1.31 (strict) or its CRD."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.schema import (
    SCHEMA_CHECK_ID,
    SCHEMA_REFERENCES,
    SCHEMA_REMEDIATION,
    SCHEMA_TITLE,
    validate_objects,
)


def evaluate(ctx: Context) -> Iterator[Violation]:
    by_ref = {(o.ref, o.file, o.line): o for o in ctx.inv.objects}
    for finding in validate_objects(ctx.inv.objects, ctx.crds_dir):
        yield Violation(by_ref[(finding.object_ref, finding.file, finding.line)], finding.message)


CHECK = Check(
    id=SCHEMA_CHECK_ID,
    title=SCHEMA_TITLE,
    severity=Severity.HIGH,
    scope=("*",),
    references=SCHEMA_REFERENCES,
    remediation=SCHEMA_REMEDIATION,
    evaluate=evaluate,
    family="schema",
)
