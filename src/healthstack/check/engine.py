"""Run the registered checks over a set of objects, applying config and suppressions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from healthstack.check.config import Config
from healthstack.check.inference import infer_intent
from healthstack.check.intent import Intent
from healthstack.check.inventory import Inventory
from healthstack.check.model import MALFORMED, Finding, K8sObject
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.sup_reason import SUPPRESS_PREFIX
from healthstack.check.reachability import DEFAULT_INTERNET_IP
from healthstack.check.registry import CHECKS


def make_context(
    objects: list[K8sObject], crds_dir: Path | None = None, intent: Intent | None = None
) -> Context:
    """A context for one run; without an explicit intent, the intent is inferred from the
    objects (``ctx.intent.inferred`` says so)."""
    inv = Inventory(objects)
    intent = intent or infer_intent(inv)
    ip = intent.internet_ip or DEFAULT_INTERNET_IP
    return Context(inv, crds_dir=crds_dir, intent=intent, internet_ip=ip)


def run_checks(
    ctx: Context, config: Config | None = None, checks: Sequence[Check] = CHECKS
) -> list[Finding]:
    config = config or Config()
    findings: list[Finding] = []
    for check in checks:
        if check.id in config.excluded_checks:
            continue
        try:
            violations = list(check.evaluate(ctx))
        except MALFORMED as exc:
            findings.append(_unjudged(check, exc, config))
            continue
        for violation in violations:
            finding = _finding(check, violation, config)
            if not _suppressed(check, violation.obj) and not config.excludes(finding):
                findings.append(finding)
    return sorted(findings, key=lambda f: (f.file, f.line, f.object_ref, f.check_id, f.message))


def _finding(check: Check, v: Violation, config: Config) -> Finding:
    return Finding(
        check.id,
        check.title,
        config.severity.get(check.id, check.severity),
        v.obj.ref,
        v.obj.file,
        v.obj.line,
        v.message,
        check.remediation,
        check.references,
        v.field_path,
    )


def _unjudged(check: Check, exc: Exception, config: Config) -> Finding:
    return Finding(
        check.id,
        check.title,
        config.severity.get(check.id, check.severity),
        "(input)",
        "<input>",
        0,
        f"could not be evaluated: an object has a field of the wrong type "
        f"({type(exc).__name__}); fix what HS-SC-001 reports (pass --crds for custom resources)",
        check.remediation,
        check.references,
    )


def _suppressed(check: Check, obj: K8sObject) -> bool:
    # An empty reason does not suppress (HS-SUP-001 reports it), and HS-SUP-001 itself cannot
    # be silenced by the annotation it polices.
    reason = obj.annotations.get(SUPPRESS_PREFIX + check.id, "")
    return check.id != "HS-SUP-001" and bool(reason.strip())
