"""``healthstack audit verify``: walk every audit hash chain; exit 1 at the first break.

Reads with DATABASE_URL (the service role may SELECT the trail) unless ``--database-url`` or
MIGRATION_DATABASE_URL says otherwise. Exit 0: every chain intact (counts printed); exit 1: for each
broken chain, its first altered, deleted, inserted or reordered record; exit 2: cannot run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import psycopg

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.security.verify import verify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("verify",))
    parser.add_argument("--database-url", help="overrides DATABASE_URL (any role that can SELECT)")
    parser.add_argument(
        "--anchor", type=Path, metavar="FILE",
        help="JSON chain heads saved by an earlier run (--save-anchor): the trail must extend them",
    )  # fmt: skip
    parser.add_argument(
        "--save-anchor", type=Path, metavar="FILE",
        help="write the current chain heads here when intact; keep it outside the database",
    )  # fmt: skip


def _load_anchor(path: Path | None) -> dict[int, tuple[int, str]]:
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text())
        return {int(chain): (int(seq), str(head)) for chain, (seq, head) in raw.items()}
    except (OSError, ValueError, TypeError) as exc:
        raise HealthstackError(f"--anchor {path}: not a saved anchor file ({exc})") from exc


def _url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    settings = Settings.from_env()
    url = settings.database_url or settings.migration_database_url
    if not url:
        raise HealthstackError("set DATABASE_URL (or pass --database-url)")
    return url


def run(args: argparse.Namespace) -> int:
    anchors = _load_anchor(args.anchor)
    try:
        report = verify(_url(args), anchors)
    except psycopg.Error as exc:
        # The driver's message can echo the URL's host; never its password (not in messages).
        raise HealthstackError(f"audit verify: database error: {type(exc).__name__}") from exc
    for problem in report.problems:
        print(problem)
    state = "intact" if report.intact else f"BROKEN in {len(report.problems)} chain(s)"
    print(f"audit trail {state}: {report.records} records in {report.chains} chains")
    if report.intact and args.save_anchor is not None:
        heads = {str(c): [seq, head] for c, (seq, head) in report.heads.items()}
        args.save_anchor.write_text(json.dumps(heads, indent=0))
        print(f"chain heads saved to {args.save_anchor}")
    return 0 if report.intact else 1
