"""HS-WL-005: secrets reach containers as files, never as environment variables."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_path,
    own_containers,
)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        for c in own_containers(w):
            for index, env in enumerate(c.get("env") or []):
                if (env.get("valueFrom") or {}).get("secretKeyRef"):
                    yield Violation(
                        w.obj,
                        f"container {c.get('name')} reads secret into env {env.get('name')}",
                        container_path(w, c, f"env.{index}"),
                    )
            for index, src in enumerate(c.get("envFrom") or []):
                if src.get("secretRef"):
                    yield Violation(
                        w.obj,
                        f"container {c.get('name')} imports Secret "
                        f"{src['secretRef'].get('name')} as env (envFrom)",
                        container_path(w, c, f"envFrom.{index}"),
                    )


CHECK = Check(
    id="HS-WL-005",
    title="Secrets are mounted as files, not environment variables",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"),
    references=(
        "HIPAA 164.312(a)(2)(iv)",
        "NIST SP 800-53 SC-28",
        "CIS Kubernetes Benchmark 5.4.1",
    ),
    remediation="Mount the Secret as a read-only volume and pass NAME_FILE=/path instead of the "
    "value.",
    evaluate=evaluate,
    family="workload hardening",
)
