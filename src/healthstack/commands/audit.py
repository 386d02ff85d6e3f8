"""``healthstack audit verify|anchor|keygen``: check the audit hash chains, anchor their heads.

``verify`` walks every chain; exit 0: intact (counts printed); 1: for each broken chain, its first
altered, deleted, inserted or reordered record (or a chain missing or added); 2: cannot run.
``--anchor`` (with ``--anchor-public-key`` or AUDIT_ANCHOR_PUBLIC_KEY) also checks every signed
anchor and that the trail extends the newest. ``anchor`` signs the current heads with
AUDIT_ANCHOR_KEY (or ``_FILE``) and appends them to ``--out`` (file or directory); ``keygen``
prints a new key pair. Reads with DATABASE_URL (the service role may SELECT the trail) unless
``--database-url`` or MIGRATION_DATABASE_URL says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import psycopg

from healthstack.config import Settings, secret_from_env
from healthstack.errors import HealthstackError
from healthstack.security import anchor
from healthstack.security.verify import verify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("verify", "anchor", "keygen"))
    parser.add_argument("--out", type=Path, metavar="PATH",
                        help="anchor: append to this file, or add a new file to this directory")  # fmt: skip
    parser.add_argument("--anchor-public-key", metavar="HEX",
                        help="the key anchors must be signed with (or AUDIT_ANCHOR_PUBLIC_KEY)")  # fmt: skip
    parser.add_argument("--database-url", help="overrides DATABASE_URL (any role that can SELECT)")
    parser.add_argument(
        "--anchor", type=Path, metavar="FILE",
        help="signed anchors (file or directory from `audit anchor`): the trail must extend them",
    )  # fmt: skip


def _load_anchor(args: argparse.Namespace) -> dict[int, tuple[int, str]]:
    if args.anchor is None:
        return {}
    key = args.anchor_public_key or secret_from_env("AUDIT_ANCHOR_PUBLIC_KEY")
    if not key:
        raise HealthstackError("--anchor needs --anchor-public-key (or AUDIT_ANCHOR_PUBLIC_KEY)")
    return anchor.load(args.anchor, anchor.public_key(key)).heads


def _write_anchor(args: argparse.Namespace) -> int:
    seed = secret_from_env("AUDIT_ANCHOR_KEY")
    if not seed:
        raise HealthstackError("set AUDIT_ANCHOR_KEY (or AUDIT_ANCHOR_KEY_FILE) to sign anchors")
    if args.out is None:
        raise HealthstackError("anchor needs --out FILE or --out DIRECTORY")
    key = anchor.private_key(seed)
    try:
        report = verify(_url(args), {})
    except psycopg.Error as exc:
        raise HealthstackError(f"audit anchor: database error: {type(exc).__name__}") from exc
    if not report.intact:  # never sign a broken trail as if it were good
        for problem in report.problems:
            print(problem)
        print(f"audit trail BROKEN in {len(report.problems)} chain(s): nothing anchored")
        return 1
    target = anchor.write(args.out, anchor.sign(key, report.heads))
    print(f"anchored {len(report.heads)} chain heads ({report.records} records) to {target}")
    return 0


def _url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    settings = Settings.from_env()
    url = settings.database_url or settings.migration_database_url
    if not url:
        raise HealthstackError("set DATABASE_URL (or pass --database-url)")
    return url


def run(args: argparse.Namespace) -> int:
    if args.action == "keygen":
        seed, public = anchor.generate_key()
        print(f"AUDIT_ANCHOR_KEY={seed}\nAUDIT_ANCHOR_PUBLIC_KEY={public}")
        return 0
    if args.action == "anchor":
        return _write_anchor(args)
    anchors = _load_anchor(args)
    try:
        report = verify(_url(args), anchors)
    except psycopg.Error as exc:
        # The driver's message can echo the URL's host; never its password (not in messages).
        raise HealthstackError(f"audit verify: database error: {type(exc).__name__}") from exc
    for problem in report.problems:
        print(problem)
    state = "intact" if report.intact else f"BROKEN in {len(report.problems)} chain(s)"
    print(f"audit trail {state}: {report.records} records in {report.chains} chains")
    return 0 if report.intact else 1
