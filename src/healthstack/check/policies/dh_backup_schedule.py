"""HS-DH-003: a Velero Schedule (not paused) backs up each PHI namespace with a
database-consistent pre-backup hook (in the Schedule or as the pod annotation
pre.hook.backup.velero.io/command) that fails the backup when the dump fails (not
onError: Continue) and a retention (ttl)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.velero import covers, pod_hook, schedules
from healthstack.check.policies.zt_default_deny import anchor


def _gaps(ctx: Context, schedule: K8sObject, ns: str) -> list[str]:
    template = schedule.spec.get("template") or {}
    gaps = ["paused: true (it runs no backups)"] if schedule.spec.get("paused") is True else []
    gaps += [] if template.get("ttl") else ["no template.ttl (retention)"]
    hooks = [
        h
        for h in (template.get("hooks") or {}).get("resources") or []
        if h.get("pre") and covers(h, ns)
    ]
    annotated = any(pod_hook(w) for w in ctx.inv.workloads if w.namespace == ns)
    if not hooks and not annotated:
        gaps.append(f"no pre-backup hook for namespace {ns} (database-consistent dump)")
    elif not annotated and all(_continues(h) for h in hooks):
        gaps.append(
            f"every pre-backup hook for namespace {ns} has onError: Continue (a failed dump "
            "still completes the backup, with a stale or partial dump)"
        )
    return gaps


def _continues(hook: dict[str, Any]) -> bool:
    """Velero's default is Fail; Continue keeps backing up after the dump failed."""
    return any(
        str((pre.get("exec") or {}).get("onError", "")).lower() == "continue"
        for pre in hook.get("pre") or []
        if isinstance(pre, dict)
    )


def evaluate(ctx: Context) -> Iterator[Violation]:
    for ns in ctx.phi_namespaces():
        covering = [s for s in schedules(ctx) if covers(s.spec.get("template") or {}, ns)]
        if not covering:
            yield Violation(anchor(ctx, ns), f"no Velero Schedule includes namespace {ns}")
            continue
        results = {s.ref: _gaps(ctx, s, ns) for s in covering}
        if all(results.values()):
            for schedule in covering:
                where = "spec.paused" if schedule.spec.get("paused") is True else "spec.template"
                yield Violation(schedule, "; ".join(results[schedule.ref]), where)


CHECK = Check(
    id="HS-DH-003",
    title="Backup schedule covers each PHI namespace with a consistent hook and retention",
    severity=Severity.HIGH,
    scope=("Schedule", "Namespace"),
    references=(
        "HIPAA 164.308(a)(7)(ii)(A)",
        "HIPAA 164.310(d)(2)(iv)",
        "HIPAA 164.312(c)(1)",
        "NIST SP 800-53 CP-9",
    ),
    remediation="Add a velero.io/v1 Schedule whose template includes the namespace, sets ttl, "
    "and runs a pre hook that dumps the database (e.g. pg_dump).",
    evaluate=evaluate,
    family="HIPAA data handling",
)
