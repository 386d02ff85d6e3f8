"""HS-MS-003: PHI workloads run with the Istio sidecar when the stack uses the mesh.

Without a sidecar, STRICT mTLS and AuthorizationPolicies do not apply to the pod at all; the mTLS
and authorization checks only see sidecar pods, so this check reports what they cannot.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, long_running, pod_path
from healthstack.check.policies.istio import injected, is_mesh_object, outside_mesh_by_design
from healthstack.check.policies.zt_default_deny import anchor


def _opt_out_path(w: Workload) -> str:
    """Where the pod opts out: its label wins over the older annotation form."""
    where = "labels" if "sidecar.istio.io/inject" in w.pod_labels else "annotations"
    return f"{pod_path(w).removesuffix('.spec')}.metadata.{where}"


def evaluate(ctx: Context) -> Iterator[Violation]:
    if not any(is_mesh_object(o) for o in ctx.inv.objects):
        return
    phi = set(ctx.phi_namespaces())
    for ns in sorted(phi):
        labels = ctx.inv.namespace_labels(ns)
        if labels.get("istio-injection") == "disabled":
            yield Violation(
                anchor(ctx, ns),
                f"namespace {ns} holds PHI and disables injection",
                "metadata.labels.istio-injection",
            )
    for w in long_running(ctx):
        if w.namespace in phi and not injected(w):
            choice = {**w.pod_annotations, **w.pod_labels}.get("sidecar.istio.io/inject")
            if choice == "false" and outside_mesh_by_design(ctx.inv, w):
                continue
            why = "opts out (sidecar.istio.io/inject: false)" if choice else "is not injected"
            yield Violation(
                w.obj,
                f"{w.key} {why}: STRICT mTLS and AuthorizationPolicies do not protect it",
                _opt_out_path(w) if choice else pod_path(w),
            )


CHECK = Check(
    id="HS-MS-003",
    title="Sidecar injection is on where PHI runs",
    severity=Severity.HIGH,
    scope=("Namespace", "Deployment", "StatefulSet", "DaemonSet"),
    references=("HIPAA 164.312(e)(1)", "HIPAA 164.312(a)(1)", "NIST SP 800-207 tenet 2"),
    remediation="Label the namespace istio-injection: enabled and remove sidecar.istio.io/inject: "
    '"false" from PHI pods (or suppress with the reason the pod stays outside the mesh).',
    evaluate=evaluate,
    family="service mesh",
)
