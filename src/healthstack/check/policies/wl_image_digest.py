"""HS-WL-004: images are pinned by digest, so what was scanned is what runs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import (
    Check,
    Context,
    Violation,
    container_path,
    long_running,
    own_containers,
)

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in long_running(ctx):
        for c in own_containers(w):
            image = str(c.get("image", ""))
            if not _DIGEST.search(image):
                yield Violation(
                    w.obj,
                    f"container {c.get('name')} image {image!r} is not pinned by @sha256 digest",
                    container_path(w, c, "image"),
                )


CHECK = Check(
    id="HS-WL-004",
    title="Images are referenced by digest",
    severity=Severity.MEDIUM,
    scope=("Deployment", "StatefulSet", "DaemonSet"),
    references=("HIPAA 164.312(c)(1)", "NIST SP 800-53 CM-14", "NIST SP 800-53 SI-7"),
    remediation="Reference images as name@sha256:<digest> (Kustomize images: digest).",
    evaluate=evaluate,
    family="workload hardening",
)
