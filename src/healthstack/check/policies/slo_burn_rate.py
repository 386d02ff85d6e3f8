"""HS-SLO-001: burn-rate alert thresholds use the error budget of the SLO the stack declares.

An alert ``ratio > (14.4 * 0.005)`` in a 99.95% stack (budget 0.0005) fires ten times too late:
the budget is gone before anyone is paged. The declared SLO comes from the alert's ``slo`` label
(``availability-99.95``), its summary (``SLO 99.95%``), or the PrometheusRule annotation
``healthstack.io/slo``; an alert stating none is held to the SLO the stack's other alerts on the
same recorded SLI series declare.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation

SLO_ANNOTATION = "healthstack.io/slo"
_NUMBER = r"(\d+(?:\.\d+)?)"
_PRODUCT = re.compile(rf"{_NUMBER}\s*\*\s*(?:\(\s*1\s*-\s*{_NUMBER}\s*\)|{_NUMBER})")
_LABEL_SLO = re.compile(r"(\d{2}(?:\.\d+)?)")
_SUMMARY_SLO = re.compile(rf"SLO\s+{_NUMBER}\s*%")
_SERIES = re.compile(r"\b([A-Za-z_][\w]*:[\w:]*?)\d+[smhdwy]\b")


def _declared(rule: dict[str, Any], prom: K8sObject) -> set[float]:
    """Every SLO the alert states (label, summary, description); the PrometheusRule annotation
    when the alert states none. A budget must match all of them."""
    label = _LABEL_SLO.search(str((rule.get("labels") or {}).get("slo", "")))
    annotations = rule.get("annotations") or {}
    texts = [str(annotations.get(k, "")) for k in ("summary", "description")]
    found: list[re.Match[str] | None] = [label] if label else []
    found += [m for t in texts for m in _SUMMARY_SLO.finditer(t)]
    if not found:
        found = [_LABEL_SLO.fullmatch(prom.annotations.get(SLO_ANNOTATION, "").rstrip("%"))]
    values = {float(m.group(1)) for m in found if m is not None}
    return {v for v in values if 50 < v < 100}


def _budgets(expr: str) -> list[float]:
    """Error budgets the threshold multiplies: ``F * B`` or ``F * (1 - SLO)``, B < 1."""
    budgets = []
    for factor, slo, plain in _PRODUCT.findall(expr):
        if slo:
            budgets.append(1 - float(slo))
        elif float(plain) < 1 <= float(factor):
            budgets.append(float(plain))
    return budgets


def alerts(ctx: Context) -> Iterator[tuple[K8sObject, dict[str, Any], str]]:
    for prom in ctx.inv.of_kind("PrometheusRule"):
        for g, group in enumerate(prom.spec.get("groups") or []):
            for r, rule in enumerate(group.get("rules") or []):
                if isinstance(rule, dict) and "alert" in rule:
                    yield prom, rule, f"spec.groups.{g}.rules.{r}.expr"


def _slis(expr: str) -> set[str]:
    """The recorded SLI series an expression reads, window dropped (``x:ratio_rate1h`` ->
    ``x:ratio_rate``), so the alerts of one SLI share a key whatever their windows."""
    return {m.group(1) for m in _SERIES.finditer(expr)}


def _stack_slos(ctx: Context) -> dict[str, set[float]]:
    """SLI series -> the SLOs the stack's alerts on it declare."""
    by_sli: dict[str, set[float]] = {}
    for prom, rule, _ in alerts(ctx):
        for sli in _slis(str(rule.get("expr", ""))):
            by_sli.setdefault(sli, set()).update(_declared(rule, prom))
    return by_sli


def evaluate(ctx: Context) -> Iterator[Violation]:
    stack = _stack_slos(ctx)
    for prom, rule, field in alerts(ctx):
        declared = _declared(rule, prom)
        if not declared:
            # An alert that states no SLO is held to the one the stack declares for its SLI.
            declared = {v for sli in _slis(str(rule.get("expr", ""))) for v in stack.get(sli, ())}
        for slo in sorted(declared):
            yield from _mismatches(prom, rule, slo, field)


def _mismatches(
    prom: K8sObject, rule: dict[str, Any], slo: float, field: str
) -> Iterator[Violation]:
    expected = round(1 - slo / 100, 10)
    for budget in sorted(set(_budgets(str(rule.get("expr", ""))))):
        if not math.isclose(budget, expected, rel_tol=1e-6):
            yield Violation(
                prom,
                f"alert {rule['alert']}: threshold uses error budget {budget:g} "
                f"(SLO {100 - budget * 100:g}%) but declares SLO {slo:g}% (budget {expected:g})",
                field,
            )


CHECK = Check(
    id="HS-SLO-001",
    title="Burn-rate alerts use the declared SLO's error budget",
    severity=Severity.MEDIUM,
    scope=("PrometheusRule",),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "HIPAA 164.312(b)", "NIST SP 800-53 SI-4"),
    remediation="Multiply each burn-rate factor by the declared SLO's error budget "
    "(1 - SLO, e.g. 0.0005 for 99.95%) and keep the slo label in step.",
    evaluate=evaluate,
    family="availability",
)
