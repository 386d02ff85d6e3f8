"""HS-DH-002: Secret manifests are not committed with values (use External Secrets)."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

# Types whose data Kubernetes fills in itself.
GENERATED_TYPES = {"kubernetes.io/service-account-token"}


def evaluate(ctx: Context) -> Iterator[Violation]:
    for secret in ctx.inv.of_kind("Secret"):
        if str(secret.doc.get("type")) in GENERATED_TYPES:
            continue
        keys = sorted(set(secret.doc.get("data") or {}) | set(secret.doc.get("stringData") or {}))
        if keys:
            yield Violation(
                secret, f"committed with values for {', '.join(keys)} (values not shown)"
            )


CHECK = Check(
    id="HS-DH-002",
    title="No Secret manifests with committed values",
    severity=Severity.CRITICAL,
    scope=("Secret",),
    references=(
        "HIPAA 164.312(a)(2)(iv)",
        "HIPAA 164.312(d)",
        "NIST SP 800-53 IA-5(7)",
        "NIST SP 800-53 SC-28",
    ),
    remediation="Delete the Secret manifest, rotate the exposed values, and create the Secret "
    "with an ExternalSecret or `healthstack secrets apply`.",
    evaluate=evaluate,
    family="HIPAA data handling",
)
