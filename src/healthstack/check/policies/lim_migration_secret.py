"""HS-LIM-003: only the migrating step can read the schema owner's credentials.

The schema owner can alter tables and the audit trail's functions; a serving process that can read
``MIGRATION_DATABASE_URL`` turns any code-execution bug into that power. Found when a regular
container names it, takes it from ``envFrom``, or mounts a Secret volume that holds it (listed in
``items``, or the whole Secret an init container reads it from).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

KEY = "MIGRATION_DATABASE_URL"


def _secret_sources(volume: dict[str, Any]) -> list[dict[str, Any]]:
    """The secret sources of a volume: ``secret`` or ``projected.sources[].secret``."""
    found = [volume["secret"]] if isinstance(volume.get("secret"), dict) else []
    for src in (volume.get("projected") or {}).get("sources") or []:
        if isinstance((src or {}).get("secret"), dict):
            found.append({"secretName": src["secret"].get("name"), **src["secret"]})
    return found


def _owner_secrets(w: Workload, volumes: dict[str, dict[str, Any]]) -> set[str]:
    """Secrets an init container reads the key from (by file or by reference)."""
    names: set[str] = set()
    for c in w.pod_spec.get("initContainers") or []:
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("key") == KEY:
                names.add(str(ref.get("name")))
            if env.get("name") == f"{KEY}_FILE":
                for m in c.get("volumeMounts") or []:
                    if str(env.get("value", "")).startswith(str(m.get("mountPath")) + "/"):
                        sources = _secret_sources(volumes.get(str(m.get("name")), {}))
                        names.update(str(s.get("secretName")) for s in sources)
    return names


def _exposures(
    c: dict[str, Any], volumes: dict[str, dict[str, Any]], owner: set[str]
) -> Iterator[str]:
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
        if str(env.get("name", "")).startswith(KEY) or ref.get("key") == KEY:
            yield f"env {env.get('name')}"
    for src in c.get("envFrom") or []:
        if str((src.get("secretRef") or {}).get("name")) in owner:
            yield f"envFrom Secret {src['secretRef'].get('name')}"
    for m in c.get("volumeMounts") or []:
        for s in _secret_sources(volumes.get(str(m.get("name")), {})):
            items = s.get("items")
            keys = {str(i.get("key")) for i in items or []}
            if KEY in keys or (items is None and str(s.get("secretName")) in owner):
                yield f"volume {m.get('name')}"


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        if w.synthetic:
            continue
        volumes = {str(v.get("name")): v for v in w.pod_spec.get("volumes") or []}
        owner = _owner_secrets(w, volumes)
        for c in w.containers:
            for how in _exposures(c, volumes, owner):
                yield Violation(w.obj, f"container {c.get('name')} can read {KEY} ({how})")


CHECK = Check(
    id="HS-LIM-003",
    title="Only the migration step sees the schema owner's credentials",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"),
    references=("HIPAA 164.312(a)(1)", "HIPAA 164.308(a)(4)", "NIST SP 800-53 AC-6"),
    remediation=f"Mount the Secret into serving containers with items that leave out {KEY}, and "
    "give the full set only to the migration init container or Job.",
    evaluate=evaluate,
    family="deployment limits",
)
