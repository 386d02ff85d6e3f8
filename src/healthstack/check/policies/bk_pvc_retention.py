"""HS-BK-003: StatefulSets holding PHI keep their PersistentVolumeClaims.

``persistentVolumeClaimRetentionPolicy`` ``Delete`` removes the data volume when the StatefulSet
is deleted or scaled down: one mistaken ``kubectl delete`` or scale-to-zero destroys the data.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def evaluate(ctx: Context) -> Iterator[Violation]:
    phi = set(ctx.phi_namespaces())
    for sts in ctx.inv.of_kind("StatefulSet"):
        policy = sts.spec.get("persistentVolumeClaimRetentionPolicy") or {}
        deleting = [k for k in ("whenDeleted", "whenScaled") if policy.get(k) == "Delete"]
        if deleting and sts.namespace in phi and sts.spec.get("volumeClaimTemplates"):
            yield Violation(
                sts,
                f"persistentVolumeClaimRetentionPolicy {' and '.join(deleting)}: Delete "
                "removes the PHI volumes with the pods",
                "spec.persistentVolumeClaimRetentionPolicy",
            )


CHECK = Check(
    id="HS-BK-003",
    title="StatefulSet PVCs holding PHI are retained",
    severity=Severity.HIGH,
    scope=("StatefulSet",),
    references=("HIPAA 164.308(a)(7)(ii)(A)", "HIPAA 164.310(d)(2)(iv)", "NIST SP 800-53 CP-9"),
    remediation="Set persistentVolumeClaimRetentionPolicy whenDeleted: Retain and whenScaled: "
    "Retain (the default).",
    evaluate=evaluate,
    family="HIPAA data handling",
)
