"""``healthstack db migrate|status``: schema migrations with Alembic."""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.service import migrate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("migrate", "status"))
    parser.add_argument("--revision", default="head", help="target revision for migrate")


def _owner_url(settings: Settings) -> str:
    url = settings.migration_database_url or settings.database_url
    if not url:
        raise HealthstackError("set MIGRATION_DATABASE_URL or DATABASE_URL (or their _FILE forms)")
    return url


async def _current(url: str) -> str | None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        value = await conn.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()
    return str(value)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    url = _owner_url(settings)
    if args.action == "migrate":
        migrate.upgrade(url, args.revision)
        print(
            f"database at revision {args.revision if args.revision != 'head' else migrate.head_revision()}"
        )
        return 0
    current = asyncio.run(_current(url))
    head = migrate.head_revision()
    print(f"current: {current or 'none'}  head: {head}")
    return 0 if current == head else 1
