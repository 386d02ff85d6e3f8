"""HS-RI-005: an ExternalSecret's ``secretStoreRef`` names a store the stack declares.

A misspelt or renamed store leaves every ExternalSecret on it unsynced: the Secret is never
created and the pods that mount it never start (or keep a stale value after a rotation). Judged
only where the manifests declare stores of that kind (a SecretStore in the namespace, or any
ClusterSecretStore); elsewhere the stores come from outside.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def evaluate(ctx: Context) -> Iterator[Violation]:
    stores = {(s.namespace, s.name) for s in ctx.inv.of_kind("SecretStore")}
    cluster_stores = {s.name for s in ctx.inv.of_kind("ClusterSecretStore")}
    for es in ctx.inv.of_kind("ExternalSecret"):
        if not es.api_version.startswith("external-secrets.io/"):
            continue
        ref = es.spec.get("secretStoreRef") or {}
        kind, name = str(ref.get("kind") or "SecretStore"), str(ref.get("name") or "")
        if kind == "ClusterSecretStore":
            missing = bool(cluster_stores) and name not in cluster_stores
        else:
            managed = any(ns == es.namespace for ns, _ in stores)
            missing = managed and (es.namespace, name) not in stores
        if missing:
            yield Violation(
                es,
                f"secretStoreRef names {kind} {name!r}, which the stack does not declare: the "
                "Secret is never synced",
                "spec.secretStoreRef.name",
            )


CHECK = Check(
    id="HS-RI-005",
    title="ExternalSecrets name a SecretStore the stack declares",
    severity=Severity.MEDIUM,
    scope=("ExternalSecret", "SecretStore", "ClusterSecretStore"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "HIPAA 164.312(a)(1)", "NIST SP 800-53 CM-6"),
    remediation="Point secretStoreRef at a SecretStore declared in the namespace (or a declared "
    "ClusterSecretStore, with kind: ClusterSecretStore).",
    evaluate=evaluate,
    family="consistency",
)
