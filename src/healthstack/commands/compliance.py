"""``healthstack compliance report``: 164.312 safeguards -> mechanism -> tests -> live evidence.

Writes ``--json`` and/or ``--html``. Test results come from ``--junit`` (pytest's JUnit XML),
else every test is "not run". Live evidence needs ``--database-url`` (or DATABASE_URL; any role
that can SELECT the trail), ``--anchor`` with ``--anchor-public-key`` (or
AUDIT_ANCHOR_PUBLIC_KEY) and ``--kustomize`` for the deployed overlay; each one not given is
shown as a gap. Exit 0 when written (whatever it shows), 2 when it cannot be. See
docs/compliance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from healthstack.config import Settings, secret_from_env
from healthstack.errors import HealthstackError
from healthstack.ops.progress import Meter, summary_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("report",))
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--html", type=Path, metavar="FILE", help="write the report as HTML")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="pytest --junitxml output")
    parser.add_argument("--database-url", help="overrides DATABASE_URL (any role that can SELECT)")
    parser.add_argument("--anchor", type=Path, metavar="PATH", help="signed anchors (file or dir)")
    parser.add_argument("--anchor-public-key", metavar="HEX", help="or AUDIT_ANCHOR_PUBLIC_KEY")
    parser.add_argument("--kustomize", type=Path, metavar="DIR", help="the deployed overlay")


def run(args: argparse.Namespace) -> int:
    from healthstack.compliance import evidence, report, results

    if args.json is None and args.html is None:
        raise HealthstackError("compliance report needs --json FILE and/or --html FILE")
    if args.kustomize is not None and not args.kustomize.is_dir():
        raise HealthstackError(f"--kustomize {args.kustomize}: not a folder")
    junit = results.load(args.junit) if args.junit is not None else None
    settings = Settings.from_env()
    sources = evidence.Sources(
        database_url=args.database_url or settings.database_url,
        anchor=args.anchor,
        anchor_public_key=args.anchor_public_key or secret_from_env("AUDIT_ANCHOR_PUBLIC_KEY"),
        kustomize=args.kustomize,
    )
    now = dt.datetime.now(dt.UTC)
    with Meter("compliance evidence", unit="sources") as meter:
        gathered = evidence.gather(sources, now, meter)
    built = report.build(junit, gathered, now)
    # Both rendered before either is written: a failure leaves nothing half-written.
    outputs = [(p, render(built)) for p, render in
               ((args.json, report.to_json), (args.html, report.to_html)) if p is not None]  # fmt: skip
    for path, _ in outputs:
        if not path.parent.is_dir():
            raise HealthstackError(f"{path}: cannot write (no folder {path.parent})")
    for path, text in outputs:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise HealthstackError(f"{path}: cannot write ({exc.strerror})") from None
    counts = ", ".join(f"{n} {k}" for k, n in built["summary"].items())
    print(f"compliance report: {len(built['safeguards'])} safeguards ({counts}) -> "
          + ", ".join(str(p) for p, _ in outputs))  # fmt: skip
    rows = [(status, str(n)) for status, n in built["summary"].items()]
    rows += [(f"evidence: {item['key']}", item["status"]) for item in built["evidence"]]
    print(summary_table("compliance report", rows))
    return 0
