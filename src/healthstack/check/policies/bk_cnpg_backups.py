"""HS-BK-004: a CloudNativePG cluster that archives WAL also takes scheduled base backups, and
keeps each one longer than the gap to the next.

CloudNativePG makes no base backup by itself: with ``backup.barmanObjectStore`` (or the
barman-cloud plugin) and no active ScheduledBackup the object store holds WAL with nothing to
replay it onto, and a recovery fails. A retention shorter than the schedule's interval deletes
the only base backup before the next exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.velero import interval_seconds

BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
_RETENTION = re.compile(r"^([1-9]\d*)([dwm])$")
_RETENTION_UNIT = {"d": 86400.0, "w": 7 * 86400.0, "m": 30 * 86400.0}


def _clusters(ctx: Context) -> list[K8sObject]:
    return [
        c for c in ctx.inv.of_kind("Cluster") if c.api_version.startswith("postgresql.cnpg.io/")
    ]


def _archives_wal(cluster: K8sObject) -> bool:
    backup = cluster.spec.get("backup") or {}
    plugins = [p for p in cluster.spec.get("plugins") or [] if isinstance(p, dict)]
    return bool(backup.get("barmanObjectStore")) or any(
        p.get("name") == BARMAN_PLUGIN for p in plugins
    )


def _scheduled(ctx: Context, cluster: K8sObject) -> list[K8sObject]:
    return [
        s
        for s in ctx.inv.of_kind("ScheduledBackup")
        if s.namespace == cluster.namespace
        and (s.spec.get("cluster") or {}).get("name") == cluster.name
        and s.spec.get("suspend") is not True
    ]


def _retention_seconds(cluster: K8sObject) -> float | None:
    match = _RETENTION.match(str((cluster.spec.get("backup") or {}).get("retentionPolicy", "")))
    return float(match.group(1)) * _RETENTION_UNIT[match.group(2)] if match else None


def _interval(schedule: K8sObject) -> float | None:
    """CloudNativePG's cron has a leading seconds field; Velero's helper reads five fields."""
    fields = str(schedule.spec.get("schedule", "")).split()
    return interval_seconds(" ".join(fields[1:] if len(fields) == 6 else fields))


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for cluster in _clusters(ctx):
        if cluster.namespace not in phi or not _archives_wal(cluster):
            continue
        scheduled = _scheduled(ctx, cluster)
        if not scheduled:
            yield Violation(
                cluster,
                f"Cluster {cluster.name} archives WAL but no active ScheduledBackup takes base "
                "backups: there is nothing to replay the WAL onto",
                "spec.backup",
            )
        retention = _retention_seconds(cluster)
        for backup in scheduled:
            interval = _interval(backup)
            if retention is not None and interval is not None and retention <= interval:
                yield Violation(
                    backup,
                    f"base backups run every {interval / 86400:g} day(s) but cluster "
                    f"{cluster.name} keeps them {retention / 86400:g} day(s): the only one "
                    "expires before the next exists",
                    "spec.schedule",
                )


CHECK = Check(
    id="HS-BK-004",
    title="CloudNativePG WAL archives have scheduled base backups that outlive their interval",
    severity=Severity.HIGH,
    scope=("Cluster", "ScheduledBackup"),
    references=("HIPAA 164.308(a)(7)(ii)(A)", "HIPAA 164.310(d)(2)(iv)", "NIST SP 800-53 CP-9"),
    remediation="Add a ScheduledBackup (suspend: false) for the cluster, with a schedule more "
    "frequent than the cluster's backup.retentionPolicy.",
    evaluate=evaluate,
    family="HIPAA data handling",
)
