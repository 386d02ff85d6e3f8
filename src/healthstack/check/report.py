"""Render findings as text (grouped by object), JSON, SARIF 2.1.0; the check list as text or
Markdown."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from healthstack import __version__
from healthstack.check.model import Finding, Severity
from healthstack.check.policies.base import Check
from healthstack.check.positions import field_line

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {
    Severity.LOW: "note",
    Severity.MEDIUM: "warning",
    Severity.HIGH: "error",
    Severity.CRITICAL: "error",
}


def text(findings: Sequence[Finding]) -> str:
    if not findings:
        return "no findings"
    lines: list[str] = []
    ordered = sorted(findings, key=lambda f: (f.file, f.line, f.object_ref))
    for (ref, file, line), group in groupby(ordered, key=lambda f: (f.object_ref, f.file, f.line)):
        lines.append(f"{ref}  ({file}:{line})")
        for f in sorted(group, key=lambda f: (-f.severity, f.check_id)):
            lines.append(f"  {f.severity.name:<8} {f.check_id}  {f.message}")
            lines.append(f"           fix: {f.remediation}")
        lines.append("")
    counts = {s.name.lower(): sum(f.severity == s for f in findings) for s in Severity}
    lines.append(
        f"{len(findings)} finding(s): " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    )
    return "\n".join(lines)


def as_json(findings: Sequence[Finding], intent: str | None = None) -> str:
    """``intent`` says what reachability was checked against: a file, or ``inferred``."""
    body: dict[str, Any] = {"findings": [f.to_json() for f in findings]}
    if intent is not None:
        body["intent"] = intent
    return json.dumps(body, indent=2)


def _rule(check: Check) -> dict[str, Any]:
    return {
        "id": check.id,
        "name": check.id.replace("-", ""),
        "shortDescription": {"text": check.title},
        "help": {"text": check.remediation},
        "defaultConfiguration": {"level": _SARIF_LEVEL[check.severity]},
        "properties": {
            "tags": [check.family, *check.references],
            "security-severity": _SECURITY_SEVERITY[check.severity],
        },
    }


# GitHub code scanning ranks alerts by this CVSS-like score (rules' "security-severity").
_SECURITY_SEVERITY = {
    Severity.LOW: "3.0",
    Severity.MEDIUM: "5.5",
    Severity.HIGH: "8.0",
    Severity.CRITICAL: "9.5",
}
SRCROOT = "%SRCROOT%"


def _artifact(file: str) -> dict[str, str]:
    """Paths inside the working directory (the repository root in CI) are relative to the
    ``%SRCROOT%`` base; others stay absolute file URIs; ``<stdin>`` stays as given."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return {"uri": path.as_uri()}
    if file.startswith("<"):
        return {"uri": file}
    return {"uri": path.as_posix(), "uriBaseId": SRCROOT}


def _line(f: Finding) -> int:
    if not f.field_path:
        return f.line
    return field_line(f.file, f.line, f.object_ref.split("/", 1)[0], f.field_path)


def _result(f: Finding, index: dict[str, int]) -> dict[str, Any]:
    return {
        "ruleId": f.check_id,
        "ruleIndex": index[f.check_id],
        "level": _SARIF_LEVEL[f.severity],
        "message": {"text": f"{f.object_ref}: {f.message}. Fix: {f.remediation}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(f.file),
                    "region": {"startLine": max(_line(f), 1)},
                },
                "logicalLocations": [{"fullyQualifiedName": f.object_ref, "kind": "object"}],
            }
        ],
        "properties": {
            "severity": f.severity.name.lower(),
            "security-severity": _SECURITY_SEVERITY[f.severity],
        },
    }


def sarif(findings: Sequence[Finding], checks: Sequence[Check], intent: str | None = None) -> str:
    index = {c.id: i for i, c in enumerate(checks)}
    run = {
        "tool": {
            "driver": {
                "name": "healthstack-check",
                "version": __version__,
                "rules": [_rule(c) for c in checks],
            }
        },
        "results": [_result(f, index) for f in findings],
        "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().resolve().as_uri() + "/"}},
        "columnKind": "utf16CodeUnits",
    }
    if intent is not None:
        run["properties"] = {"intent": intent}
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def list_text(checks: Sequence[Check]) -> str:
    return "\n".join(f"{c.id:<11} {c.severity.name.lower():<8} {c.title}" for c in checks)


def list_markdown(checks: Sequence[Check]) -> str:
    lines = [
        "# healthstack check: the checks",
        "",
        "Generated by `healthstack check --list --format markdown` (`make docs`); do not edit.",
        "Suppress a check on one object with the annotation "
        '`healthstack.io/suppress.<ID>: "<reason>"` (an empty reason is itself a finding).',
        "",
    ]
    # One section per family, in order of first appearance, wherever the registry lists it.
    families = list(dict.fromkeys(c.family for c in checks))
    for family in families:
        group = [c for c in checks if c.family == family]
        lines += [
            f"## {family}",
            "",
            "| id | severity | check | scope | references | fix |",
            "|---|---|---|---|---|---|",
        ]
        for c in group:
            cells = [
                c.id,
                c.severity.name.lower(),
                c.title,
                ", ".join(c.scope),
                "; ".join(c.references),
                c.remediation,
            ]
            lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        lines.append("")
    return "\n".join(lines)
