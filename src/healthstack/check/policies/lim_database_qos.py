"""HS-LIM-006: database pods run with Guaranteed QoS (requests equal limits).

Burstable database pods are evicted before Guaranteed ones under node memory pressure and can be
throttled below their limit; for the one stateful component that means failovers under load.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation, long_running, own_containers
from healthstack.check.policies.limits import quantity

DATABASE_IMAGES = ("postgres", "timescale")


def _unequal(resources: dict[str, Any]) -> list[str]:
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    return [
        k
        for k in ("cpu", "memory")
        if quantity(requests.get(k)) is None or quantity(requests.get(k)) != quantity(limits.get(k))
    ]


def _databases(ctx: Context) -> Iterator[tuple[K8sObject, str, dict[str, Any]]]:
    for obj in ctx.inv.of_kind("Cluster"):
        if obj.api_version.startswith("postgresql.cnpg.io/"):
            yield obj, "instances", obj.spec.get("resources") or {}
    for w in long_running(ctx):
        for c in own_containers(w):
            if any(i in str(c.get("image", "")).lower() for i in DATABASE_IMAGES):
                yield w.obj, f"container {c.get('name')}", c.get("resources") or {}


def evaluate(ctx: Context) -> Iterator[Violation]:
    for obj, what, resources in _databases(ctx):
        unequal = _unequal(resources)
        if unequal:
            yield Violation(obj, f"{what}: requests differ from limits for {', '.join(unequal)} "
                            "(not Guaranteed QoS)")  # fmt: skip


CHECK = Check(
    id="HS-LIM-006",
    title="Database pods have Guaranteed QoS",
    severity=Severity.MEDIUM,
    scope=("Cluster", "StatefulSet", "Deployment"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SC-6"),
    remediation="Set the database's CPU and memory requests equal to its limits.",
    evaluate=evaluate,
    family="deployment limits",
)
