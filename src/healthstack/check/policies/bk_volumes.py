"""HS-BK-002: volumes holding PHI are in the backup (volume snapshots or file-system backup).

A Schedule with ``snapshotVolumes: false`` and no file-system backup stores only the manifests:
the database's PersistentVolumeClaims are recreated empty on restore.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.velero import (
    FS_BACKUP_ANNOTATION,
    FS_EXCLUDE_ANNOTATION,
    covers,
    schedules,
)


def _persistent_volumes(w: Workload) -> list[str]:
    claims = [
        str((t.get("metadata") or {}).get("name"))
        for t in w.obj.spec.get("volumeClaimTemplates") or []
    ]
    claims += [
        str(v.get("name"))
        for v in w.pod_spec.get("volumes") or []
        if isinstance(v, dict) and v.get("persistentVolumeClaim")
    ]
    return claims


def _names(w: Workload, key: str) -> set[str]:
    return {n.strip() for n in w.pod_annotations.get(key, "").split(",") if n.strip()}


# Velero resolves these short names through discovery like kubectl does.
ALIASES = {
    "persistentvolumeclaims": {"persistentvolumeclaims", "persistentvolumeclaim", "pvc"},
    "persistentvolumes": {"persistentvolumes", "persistentvolume", "pv"},
    "pods": {"pods", "pod", "po"},
}


def _listed(template: dict[str, Any], key: str, resource: str, default: list[str]) -> bool:
    names = {str(r).lower() for r in template.get(key) or default}
    return bool(names & (ALIASES[resource] | ({"*"} if key == "includedResources" else set())))


def _missing_resources(template: dict[str, Any]) -> list[str]:
    """Resources the volumes' data travels with: without the claim nothing is snapshotted (its
    volume follows it unless excluded), without the pod no file-system backup runs."""
    needed = {"persistentvolumeclaims": True, "persistentvolumes": False}
    if template.get("snapshotVolumes", True) is False:
        needed["pods"] = True
    return [
        r
        for r, must_be_listed in needed.items()
        if _listed(template, "excludedResources", r, [])
        or (must_be_listed and not _listed(template, "includedResources", r, ["*"]))
    ]


def _covered(template: dict[str, Any], w: Workload, volume: str) -> bool:
    if template.get("snapshotVolumes", True) is not False:
        return True
    if template.get("defaultVolumesToFsBackup"):
        return volume not in _names(w, FS_EXCLUDE_ANNOTATION)
    return volume in _names(w, FS_BACKUP_ANNOTATION)


def _gaps(ctx: Context, schedule: K8sObject, phi: set[str]) -> Iterator[str]:
    template = schedule.spec.get("template") or {}
    for w in ctx.inv.workloads:
        if w.synthetic or w.namespace not in phi or not covers(template, w.namespace):
            continue
        for volume in _persistent_volumes(w):
            if _missing_resources(template) or not _covered(template, w, volume):
                yield f"{w.key} volume {volume}"


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for schedule in schedules(ctx):
        gaps = sorted(set(_gaps(ctx, schedule, phi)))
        if not gaps:
            continue
        template = schedule.spec.get("template") or {}
        missing = _missing_resources(template)
        if missing:
            field = (
                "excludedResources" if template.get("excludedResources") else "includedResources"
            )
            why, where = f"the template leaves out {', '.join(missing)}", f"spec.template.{field}"
        else:
            why = "snapshotVolumes is false and the volume is not in a file-system backup"
            where = "spec.template.snapshotVolumes"
        yield Violation(schedule, f"backs up no data of {', '.join(gaps)}: {why}", where)


CHECK = Check(
    id="HS-BK-002",
    title="Backups include the volumes that hold PHI",
    severity=Severity.HIGH,
    scope=("Schedule", "StatefulSet", "Deployment"),
    references=("HIPAA 164.308(a)(7)(ii)(A)", "HIPAA 164.310(d)(2)(iv)", "NIST SP 800-53 CP-9"),
    remediation="Keep snapshotVolumes true, or set defaultVolumesToFsBackup: true (or list the "
    "volume in the pod annotation backup.velero.io/backup-volumes); keep persistentvolumeclaims, "
    "persistentvolumes and pods in the backup's resources.",
    evaluate=evaluate,
    family="HIPAA data handling",
)
