"""HS-MS-010: DENY AuthorizationPolicies match paths by prefix, not by exact path.

A DENY rule on the exact path ``/admin`` does not match ``/admin/``, ``/admin/users`` or
``/Admin`` (Istio compares paths literally; only the mesh's path normalization merges ``//`` and
``/./``): the request meant to be refused is admitted. Istio's guidance is a prefix (``/admin*``)
for DENY, and ALLOW rules naming exact paths (fail closed) otherwise. The same holds for
``notPaths`` in an ALLOW rule, which exempts only the literal path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation


def _exact(patterns: Any) -> list[str]:
    return [str(p) for p in patterns or [] if "*" not in str(p)]


def evaluate(ctx: Context) -> Iterator[Violation]:
    for ap in ctx.inv.of_kind("AuthorizationPolicy"):
        action = ap.spec.get("action", "ALLOW")
        key = {"DENY": "paths", "ALLOW": "notPaths"}.get(action)
        if key is None:
            continue
        for r, rule in enumerate(ap.spec.get("rules") or []):
            for t, target in enumerate((rule or {}).get("to") or []):
                exact = _exact(((target or {}).get("operation") or {}).get(key))
                if exact:
                    yield Violation(
                        ap,
                        f"{action} rule #{r + 1} {key} {', '.join(exact)} match only the literal "
                        f"path: {exact[0]}/ and {exact[0]}/... slip past it (use {exact[0]}*)",
                        f"spec.rules.{r}.to.{t}.operation.{key}",
                    )


CHECK = Check(
    id="HS-MS-010",
    title="DENY rules (and ALLOW notPaths) match paths by prefix",
    severity=Severity.HIGH,
    scope=("AuthorizationPolicy",),
    references=("HIPAA 164.312(a)(1)", "NIST SP 800-53 AC-3", "NIST SP 800-207 tenet 3"),
    remediation="Write the DENY paths (or ALLOW notPaths) as prefixes (/admin*), or turn the "
    "policy around: ALLOW the exact paths that are served.",
    evaluate=evaluate,
    family="service mesh",
)
