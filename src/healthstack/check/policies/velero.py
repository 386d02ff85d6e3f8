"""Velero helpers shared by the backup checks (not a check itself)."""

from __future__ import annotations

from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject
from healthstack.check.policies.base import Context, seconds

HOOK_ANNOTATION = "pre.hook.backup.velero.io/command"
FS_BACKUP_ANNOTATION = "backup.velero.io/backup-volumes"
FS_EXCLUDE_ANNOTATION = "backup.velero.io/backup-volumes-excludes"
_MACROS = {
    "@hourly": 3600.0,
    "@daily": 86400.0,
    "@midnight": 86400.0,
    "@weekly": 7 * 86400.0,
    "@monthly": 31 * 86400.0,
    "@yearly": 366 * 86400.0,
    "@annually": 366 * 86400.0,
}


def schedules(ctx: Context) -> list[K8sObject]:
    return [s for s in ctx.inv.of_kind("Schedule") if s.api_version.startswith("velero.io/")]


def covers(template: dict[str, Any], ns: str) -> bool:
    included = [str(n) for n in template.get("includedNamespaces") or ["*"]]
    excluded = [str(n) for n in template.get("excludedNamespaces") or []]
    return (ns in included or "*" in included) and ns not in excluded


def pod_hook(w: Workload) -> bool:
    """Velero also runs pre-backup hooks declared as pod annotations."""
    return bool(w.pod_annotations.get(HOOK_ANNOTATION, "").strip())


def interval_seconds(schedule: str) -> float | None:
    """The longest gap between two runs of a Velero cron schedule (None: not understood)."""
    text = schedule.strip()
    if text in _MACROS:
        return _MACROS[text]
    if text.startswith("@every "):
        return seconds(text.removeprefix("@every ").strip())
    fields = text.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, _month, dow = fields
    if dom != "*":
        return 31 * 86400.0
    if dow != "*":
        days = len(dow.split(","))
        return 7 * 86400.0 / days if "-" not in dow else 86400.0
    return _step(hour, 3600.0, 24) if hour != "*" else _step(minute, 60.0, 60)


def _step(field: str, unit: float, cycle: int) -> float:
    if field.startswith("*/") and field[2:].isdigit():
        return int(field[2:]) * unit
    values = field.split(",")
    return cycle * unit / len(values) if len(values) > 1 else cycle * unit
