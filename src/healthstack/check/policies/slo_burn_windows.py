"""HS-SLO-002: multiwindow burn-rate alerts pair each window with its factor, and page fast.

The multiwindow, multi-burn-rate alerts of the SRE workbook (chapter 5) use one factor per long
window: 14.4 over 1h (2% of a 30-day budget), 6 over 6h (5%), 3 over 1d and 1 over 3d (10%),
and the same factor on the short confirmation window. A 6 on the 1h alert pages after 5% of the
budget instead of 2%; a short window with another factor makes the ``and`` never (or always)
confirm. A set of burn-rate alerts on one SLI without the 1h fast-burn alert pages nobody until
the budget is mostly gone. Windows outside that table are not judged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.slo_burn_rate import alerts

# long window -> (factor, short window)
WORKBOOK = {"1h": (14.4, "5m"), "6h": (6.0, "30m"), "1d": (3.0, "2h"), "3d": (1.0, "6h")}
_TERM = re.compile(
    r"\b([A-Za-z_][\w]*:[\w:]*?)(\d+[smhd])\s*>\s*\(?\s*(\d+(?:\.\d+)?)\s*\*\s*[\d.(]"
)


def _terms(expr: str) -> list[tuple[str, str, float]]:
    """``(series, window, factor)`` for each ``series<window> > (factor * budget)``."""
    return [(s, w, float(f)) for s, w, f in _TERM.findall(expr)]


def _pair_problem(terms: list[tuple[str, str, float]]) -> str | None:
    """What is wrong with one alert's (long, short) window pair, if anything."""
    windows = {w for _, w, _ in terms}
    longs = [t for t in terms if t[1] in WORKBOOK and WORKBOOK[t[1]][1] in windows - {t[1]}]
    for series, window, factor in longs:
        want, short = WORKBOOK[window]
        if not math.isclose(factor, want):
            return (
                f"factor {factor:g} on the {window} window of {series} (the workbook's is {want:g})"
            )
        for _, w, f in terms:
            if w == short and not math.isclose(f, factor):
                return f"factor {f:g} on the {short} window but {factor:g} on the {window} window"
    return None


def evaluate(ctx: Context) -> Iterator[Violation]:
    windows_by_sli: dict[tuple[str, str], set[str]] = {}
    first: dict[tuple[str, str], tuple[K8sObject, str]] = {}
    for prom, rule, field in alerts(ctx):
        terms = _terms(str(rule.get("expr", "")))
        problem = _pair_problem(terms)
        if problem:
            yield Violation(prom, f"alert {rule['alert']}: {problem}", field)
        for series, window, _ in terms:
            key = (prom.namespace, series)
            windows_by_sli.setdefault(key, set()).add(window)
            first.setdefault(key, (prom, field))
    for (_, series), windows in sorted(windows_by_sli.items()):
        long = windows & set(WORKBOOK)
        if len(long) >= 2 and "1h" not in long:
            prom, field = first[(_, series)]
            yield Violation(
                prom,
                f"burn-rate alerts on {series} cover {', '.join(sorted(long))} but no 1h "
                "fast-burn window: nobody is paged until most of the budget is gone",
                field,
            )


CHECK = Check(
    id="HS-SLO-002",
    title="Burn-rate alerts pair each window with its factor and include the fast burn",
    severity=Severity.MEDIUM,
    scope=("PrometheusRule",),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "HIPAA 164.312(b)", "NIST SP 800-53 SI-4"),
    remediation="Use 14.4 on 1h/5m, 6 on 6h/30m, 3 on 1d/2h and 1 on 3d/6h (the same factor on "
    "both windows of an alert), and keep the 1h fast-burn alert.",
    evaluate=evaluate,
    family="availability",
)
