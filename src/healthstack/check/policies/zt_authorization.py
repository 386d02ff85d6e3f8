"""HS-ZT-007: an allow-nothing AuthorizationPolicy, so only explicit allows admit requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.zt_default_deny import anchor
from healthstack.check.policies.zt_mtls import ROOT_NAMESPACE


def is_allow_nothing(ap: K8sObject) -> bool:
    spec = ap.spec
    return (
        spec.get("action", "ALLOW") == "ALLOW"
        and not spec.get("rules")
        and not spec.get("selector")
        and not spec.get("targetRefs")
    )


def _any_caller(rule: Any) -> bool:
    """An ALLOW rule that names no caller: no ``from`` and no ``when`` condition, or a source
    that is only ``*`` principals/namespaces (every mesh identity). ``to`` narrows the target,
    not who may call it."""
    if not isinstance(rule, dict) or rule.get("when"):
        return False
    sources = [f.get("source") or {} for f in rule.get("from") or [] if isinstance(f, dict)]
    return not sources or any(
        s and all(k in ("principals", "namespaces") and v == ["*"] for k, v in s.items())
        for s in sources
    )


def evaluate(ctx: Context) -> Iterator[Violation]:
    policies = ctx.inv.of_kind("AuthorizationPolicy")
    for ap in policies:
        if ap.spec.get("action", "ALLOW") != "ALLOW":
            continue
        for index, rule in enumerate(ap.spec.get("rules") or []):
            if rule == {}:
                yield Violation(ap, "has an empty rule ({}), which allows every request")
            elif _any_caller(rule):
                yield Violation(
                    ap,
                    f"rule #{index + 1} names no caller (no from/when, or only *): every "
                    "peer may make the requests it admits",
                    f"spec.rules.{index}",
                )
    meshed = sorted(
        {w.namespace for w in ctx.inv.workloads if any(c.get("_injected") for c in w.containers)}
    )
    for ns in meshed:
        if ns not in ctx.phi_namespaces():
            continue
        if not any(is_allow_nothing(p) for p in policies if p.namespace in (ns, ROOT_NAMESPACE)):
            yield Violation(
                anchor(ctx, ns),
                f"namespace {ns}: no allow-nothing "
                "AuthorizationPolicy (spec: {}): every authenticated"
                " peer may call every workload",
            )


CHECK = Check(
    id="HS-ZT-007",
    title="Allow-nothing AuthorizationPolicy with explicit allows",
    severity=Severity.HIGH,
    scope=("AuthorizationPolicy", "Namespace"),
    references=("HIPAA 164.312(a)(1)", "NIST SP 800-207 tenet 3", "NIST SP 800-53 AC-3"),
    remediation="Add an AuthorizationPolicy with an empty spec in the namespace and ALLOW "
    "policies naming the principals, methods and paths each workload accepts.",
    evaluate=evaluate,
    family="zero trust",
)
