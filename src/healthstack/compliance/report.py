"""The compliance report as data, JSON and one self-contained HTML page (no scripts, no links out).

Each safeguard's status is the worst of what backs it: ``failing`` (a test failed, or live
evidence shows a problem), ``gap`` (a known part not met, or evidence that could not be gathered),
``unproven`` (its tests were not run), else ``met``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

from healthstack.compliance.evidence import Evidence, as_dict
from healthstack.compliance.results import NOT_RUN
from healthstack.compliance.safeguards import SAFEGUARDS, Safeguard

LAW = "45 CFR 164.312 (HIPAA Security Rule, technical safeguards)"


def build(results: dict[str, str] | None, evidence: list[Evidence],
          now: dt.datetime) -> dict[str, Any]:  # fmt: skip
    by_key = {item.key: item for item in evidence}
    rows = [_row(s, results, by_key) for s in SAFEGUARDS]
    statuses = [r["status"] for r in rows]
    return {
        "title": f"healthstack compliance report: {LAW}",
        "generated_at": now.isoformat(timespec="seconds"),
        "test_results": "JUnit XML" if results is not None else NOT_RUN,
        "summary": {s: statuses.count(s) for s in ("met", "unproven", "gap", "failing")},
        "safeguards": rows,
        "evidence": [as_dict(item) for item in evidence],
    }


def _row(safeguard: Safeguard, results: dict[str, str] | None,
         evidence: dict[str, Evidence]) -> dict[str, Any]:  # fmt: skip
    tests = [{"id": t, "result": (results or {}).get(t, NOT_RUN)} for t in safeguard.tests]
    linked = [evidence[k] for k in safeguard.evidence if k in evidence]
    outcomes = {t["result"] for t in tests} | {e.status for e in linked}
    if outcomes & {"failed", "error", "problem"}:
        status = "failing"
    elif safeguard.gap or "gap" in outcomes:
        status = "gap"
    elif outcomes - {"passed", "ok"}:
        status = "unproven"
    else:
        status = "met"
    return {"cite": safeguard.cite, "title": safeguard.title, "kind": safeguard.kind,
            "mechanism": safeguard.mechanism, "doc": safeguard.doc, "tests": tests,
            "evidence": [e.key for e in linked], "gap": safeguard.gap, "status": status}  # fmt: skip


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


STYLE = """body{font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:2rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #767676;padding:.4rem;
text-align:left;vertical-align:top}th{background:#f0f0f0}code{font-size:.85em}
.met,.ok,.passed{color:#0b6b0b}.failing,.problem,.failed,.error{color:#a00000;font-weight:bold}
.gap,.unproven,.skipped,.not-run{color:#7a4a00;font-weight:bold}"""


def to_html(report: dict[str, Any]) -> str:
    e = html.escape
    summary = ", ".join(f"{n} {e(k)}" for k, n in report["summary"].items())
    rows = "".join(_html_row(r) for r in report["safeguards"])
    evidence = "".join(
        f"<tr><td>{e(i['title'])}</td><td class=\"{e(i['status'])}\">{e(i['status'])}</td>"
        f"<td>{e(i['summary'])}</td></tr>" for i in report["evidence"])  # fmt: skip
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(report['title'])}</title><style>{STYLE}</style></head><body>"
        f"<h1>{e(report['title'])}</h1><p>Generated {e(report['generated_at'])}. "
        f"Test results: {e(report['test_results'])}. Safeguards: {summary}.</p>"
        '<h2>Safeguards</h2><table><thead><tr><th scope="col">Section</th>'
        '<th scope="col">Status</th><th scope="col">Mechanism</th>'
        '<th scope="col">Tests (result of the last run)</th></tr></thead>'
        f"<tbody>{rows}</tbody></table><h2>Live evidence</h2><table><thead><tr>"
        '<th scope="col">Evidence</th><th scope="col">Status</th><th scope="col">'
        f"Finding</th></tr></thead><tbody>{evidence}</tbody></table></body></html>\n"
    )


def _html_row(row: dict[str, Any]) -> str:
    e = html.escape
    tests = "".join(
        f"<li><code>{e(t['id'])}</code>: <span class=\"{e(t['result'].replace(' ', '-'))}\">"
        f"{e(t['result'])}</span></li>" for t in row["tests"])  # fmt: skip
    gap = f'<p class="gap">Gap: {e(row["gap"])}</p>' if row["gap"] else ""
    return (f"<tr><th scope=\"row\">{e(row['cite'])}<br>{e(row['title'])} ({e(row['kind'])})"
            f"</th><td class=\"{e(row['status'])}\">{e(row['status'])}</td>"
            f"<td>{e(row['mechanism'])} <a href=\"{e(row['doc'])}\">{e(row['doc'])}</a>{gap}"
            f"</td><td><ul>{tests}</ul></td></tr>")  # fmt: skip
