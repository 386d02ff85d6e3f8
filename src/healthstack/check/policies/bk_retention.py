"""HS-BK-001: a Velero Schedule keeps each backup longer than the time between backups.

With ``ttl`` at or below the schedule's interval, a backup expires before (or as) the next one is
taken: a failed run leaves no restorable backup at all.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, seconds
from healthstack.check.policies.velero import interval_seconds, schedules


def evaluate(ctx: Context) -> Iterator[Violation]:
    for schedule in schedules(ctx):
        ttl = seconds((schedule.spec.get("template") or {}).get("ttl"))
        interval = interval_seconds(str(schedule.spec.get("schedule", "")))
        if ttl is not None and interval is not None and ttl <= interval:
            yield Violation(
                schedule,
                f"ttl {ttl / 3600:g}h does not exceed the schedule interval {interval / 3600:g}h: "
                "backups expire before the next one exists",
                "spec.template.ttl",
            )


CHECK = Check(
    id="HS-BK-001",
    title="Backup retention exceeds the backup interval",
    severity=Severity.HIGH,
    scope=("Schedule",),
    references=("HIPAA 164.308(a)(7)(ii)(A)", "NIST SP 800-53 CP-9"),
    remediation="Set template.ttl to several backup intervals (e.g. 720h for a daily schedule).",
    evaluate=evaluate,
    family="HIPAA data handling",
)
