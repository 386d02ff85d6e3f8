"""HS-AV-001: every replicated workload has a PodDisruptionBudget that drains can satisfy; a
single-instance database needs a PDB, which may block eviction."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    is_database,
    long_running,
)
from healthstack.check.selectors import matches


def min_replicas(ctx: Context, w: Workload) -> int:
    """Fewest pods the workload runs: the HPA minimum when one targets it, else ``replicas``."""
    for hpa in ctx.inv.of_kind("HorizontalPodAutoscaler"):
        ref = hpa.spec.get("scaleTargetRef") or {}
        if (
            hpa.namespace == w.namespace
            and ref.get("kind") == w.obj.kind
            and ref.get("name") == w.name
        ):
            return int(hpa.spec.get("minReplicas", 1))
    return w.replicas if w.replicas is not None else 1


def _allowed_disruptions(spec: dict[str, Any], replicas: int) -> int:
    def count(value: Any, round_up: bool) -> int:
        if isinstance(value, str) and value.endswith("%"):
            share = replicas * float(value[:-1]) / 100
            return math.ceil(share) if round_up else math.floor(share)
        return int(value)

    if "minAvailable" in spec:
        return replicas - count(spec["minAvailable"], round_up=True)
    return count(spec.get("maxUnavailable", 1), round_up=True)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in long_running(ctx):
        if w.obj.kind == "DaemonSet":
            continue
        pdbs = [
            p
            for p in ctx.inv.of_kind("PodDisruptionBudget")
            if p.namespace == w.namespace and matches(p.spec.get("selector"), w.pod_labels)
        ]
        replicas = min_replicas(ctx, w)
        if not pdbs:
            yield Violation(w.obj, "no PodDisruptionBudget selects its pods")
        if replicas == 1 and is_database(w):
            # A single-instance database: a PDB that blocks eviction is the documented choice
            # (drains wait for an operator), so only the PDB's presence is judged.
            continue
        for pdb in pdbs:
            if _allowed_disruptions(pdb.spec, replicas) < 1:
                yield Violation(
                    w.obj,
                    f"{pdb.ref} allows no disruption at {replicas} "
                    "replica(s): node drains would block",
                )
        if replicas < 2:
            yield Violation(w.obj, f"runs {replicas} replica(s): any disruption is an outage")


CHECK = Check(
    id="HS-AV-001",
    title="A satisfiable PodDisruptionBudget covers each replicated workload",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "PodDisruptionBudget", "HorizontalPodAutoscaler"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "HIPAA 164.312(a)(2)(ii)", "NIST SP 800-53 CP-10"),
    remediation="Run at least 2 replicas (HPA minReplicas >= 2) and add a PodDisruptionBudget "
    "with maxUnavailable: 1 (or minAvailable below the minimum replica count).",
    evaluate=evaluate,
    family="availability",
)
