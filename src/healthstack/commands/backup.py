"""``healthstack backup create|restore``: encrypted, consistent logical backups (docs/backup.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.ops import backup
from healthstack.ops.progress import Meter, amount, duration, summary_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser(
        "create", help="dump one consistent snapshot, encrypted with BACKUP_KEY"
    )
    create.add_argument("--out", type=Path, required=True, help="empty directory for the backup")
    create.add_argument("--database-url", help="default: MIGRATION_DATABASE_URL, then DATABASE_URL")
    restore = sub.add_parser("restore", help="restore a backup into an EMPTY database")
    restore.add_argument("directory", type=Path, help="a directory written by `backup create`")
    restore.add_argument("--database-url", required=True, help="the empty target database")


def _source_url(args: argparse.Namespace, settings: Settings) -> str:
    url = args.database_url or settings.migration_database_url or settings.database_url
    if not url:
        raise HealthstackError("no database: pass --database-url or set DATABASE_URL")
    return str(url)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    key = backup.backup_key(settings)
    if args.action == "create":
        with Meter("backup create", unit="B") as meter:
            manifest = backup.create(_source_url(args, settings), args.out, key, meter)
        rows = sum(manifest["tables"].values())
        print(
            f"backup written to {args.out}: {len(manifest['tables'])} tables, {rows} rows, "
            f"sha256 {manifest['files'][backup.DUMP]['sha256']}"
        )
        print(summary_table("backup create", _summary(manifest, meter)))
        return 0
    with Meter("backup restore", unit="B") as meter:
        result = backup.restore(args.directory, args.database_url, key, meter)
    print(json.dumps({"restored": True, "tables": result["tables"]}, indent=2))
    # stdout stays the JSON scripts read; the summary for people goes beside the progress.
    print(summary_table("backup restore", _summary(result["manifest"], meter)), file=sys.stderr)
    return 0


def _summary(manifest: dict[str, Any], meter: Meter) -> list[tuple[str, str]]:
    tables: dict[str, int] = manifest["tables"]
    return [
        ("tables", str(len(tables))),
        ("rows", f"{sum(tables.values()):,}"),
        ("sealed dump", amount(manifest["files"][backup.DUMP]["bytes"], "B")),
        ("schema revision", str(manifest.get("schema_revision"))),
        ("elapsed", duration(meter.elapsed())),
    ]
