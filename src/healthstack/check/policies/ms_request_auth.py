"""HS-MS-008: a RequestAuthentication is enforced by an AuthorizationPolicy on request principals.

RequestAuthentication only rejects *invalid* tokens: a request with no token at all is accepted
with no identity. Unless an AuthorizationPolicy on the same workloads requires a request
principal (``requestPrincipals``, ``notRequestPrincipals`` or a ``request.auth.*`` condition),
the JWT validation protects nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from healthstack.check.inventory import Workload
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.istio import ROOT_NAMESPACE
from healthstack.check.selectors import matches

TOKEN_MARKERS = ("requestPrincipals", "notRequestPrincipals", "request.auth.")


def _applies(policy: K8sObject, w: Workload) -> bool:
    """Istio's scoping: the root namespace reaches every namespace; a selector narrows."""
    if policy.namespace not in (w.namespace, ROOT_NAMESPACE):
        return False
    selector = policy.spec.get("selector")
    return not isinstance(selector, dict) or not selector or matches(selector, w.pod_labels)


def _requires_token(ap: K8sObject) -> bool:
    text = json.dumps(ap.spec)
    return any(marker in text for marker in TOKEN_MARKERS)


def evaluate(ctx: Context) -> Iterator[Violation]:
    policies = ctx.inv.of_kind("AuthorizationPolicy")
    for ra in ctx.inv.of_kind("RequestAuthentication"):
        # A mesh-wide one (root namespace) is usually enforced at the gateway, outside the set.
        if ra.namespace == ROOT_NAMESPACE:
            continue
        unenforced = [
            w.key
            for w in ctx.inv.workloads
            if w.injected
            and not w.is_database  # database protocols carry no JWT
            and _applies(ra, w)
            and not any(_requires_token(ap) for ap in policies if _applies(ap, w))
        ]
        if unenforced:
            yield Violation(
                ra,
                f"tokens are validated but never required on {', '.join(unenforced)}: a request "
                "without a token is admitted",
                "spec",
            )


CHECK = Check(
    id="HS-MS-008",
    title="RequestAuthentication is enforced by an AuthorizationPolicy",
    severity=Severity.HIGH,
    scope=("RequestAuthentication", "AuthorizationPolicy"),
    references=("HIPAA 164.312(d)", "HIPAA 164.312(a)(1)", "NIST SP 800-53 IA-2"),
    remediation="Add an AuthorizationPolicy for the same workloads that requires "
    'requestPrincipals: ["*"] (or a DENY policy with notRequestPrincipals: ["*"]) on the routes '
    "that need an end-user token.",
    evaluate=evaluate,
    family="service mesh",
)
