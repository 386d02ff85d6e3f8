"""HS-LIM-005: backups of a PHI namespace leave its Secrets out and dump beside, not onto, the data.

Secrets come from the secret manager; a Velero backup that also holds them puts the keys next to
the encrypted data they protect. A pre-backup ``pg_dump`` written onto the database's own data
volume can fill it, and a full data volume stops the primary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation

DATA_DIRS = ("/var/lib/postgresql/data", "/var/lib/postgresql/wal")  # PGDATA, CloudNativePG WAL


def _template(schedule: K8sObject) -> dict[str, Any]:
    return schedule.spec.get("template") or {}


def _hook_commands(template: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for hook in (template.get("hooks") or {}).get("resources") or []:
        for step in [*(hook.get("pre") or []), *(hook.get("post") or [])]:
            command = (step.get("exec") or {}).get("command") or []
            yield str(hook.get("name")), " ".join(str(w) for w in command)


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for schedule in ctx.inv.of_kind("Schedule"):
        template = _template(schedule)
        included = set(template.get("includedNamespaces") or [])
        if not (included & phi or "*" in included):
            continue
        excluded = {str(r).lower() for r in template.get("excludedResources") or []}
        if "secrets" not in excluded:
            yield Violation(
                schedule, "backs up the namespace's Secrets (excludedResources lacks secrets)"
            )
        for name, command in _hook_commands(template):
            if "pg_dump" in command and any(d + "/" in command for d in DATA_DIRS):
                yield Violation(
                    schedule, f"hook {name} writes its dump onto the database's data volume"
                )


CHECK = Check(
    id="HS-LIM-005",
    title="Backups exclude Secrets and dump outside the data volume",
    severity=Severity.HIGH,
    scope=("Schedule",),
    references=("HIPAA 164.308(a)(7)(ii)(A)", "HIPAA 164.312(a)(2)(iv)", "NIST SP 800-53 CP-9"),
    remediation="Add secrets to the Schedule's excludedResources and write pre-backup dumps to "
    "a volume of their own.",
    evaluate=evaluate,
    family="deployment limits",
)
