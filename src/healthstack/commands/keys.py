"""``healthstack keys generate|rotate``: PHI encryption keys.

``rotate`` re-encrypts every stored resource (current rows and history) under the active
``ENCRYPTION_KEY`` and rebuilds the blind-index tokens of current rows, while the API serves:
small transactions, rows locked by the API skipped (``FOR UPDATE SKIP LOCKED``) and revisited,
progress kept in the data itself (each row's key id), so an interrupted run resumes and a repeated
run changes nothing. Procedure: deploy the new key as ``ENCRYPTION_KEY`` with the old one in
``ENCRYPTION_OLD_KEYS``, run ``keys rotate``, then drop the old key. See docs/fhir.md.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.fhir import index
from healthstack.fhir.crypto import DecryptionError, Keyring, aad

CURRENT_BATCH = """
SELECT resource_type, id, version, key_id, body FROM fhir_resource
WHERE (resource_type, id) > ($1, $2) AND key_id <> $3
ORDER BY resource_type, id LIMIT $4 FOR UPDATE SKIP LOCKED
"""
VERSION_BATCH = """
SELECT resource_type, id, version, key_id, body FROM fhir_resource_version
WHERE (resource_type, id, version) > ($1, $2, $5) AND key_id <> $3
ORDER BY resource_type, id, version LIMIT $4 FOR UPDATE SKIP LOCKED
"""
UPDATE_CURRENT = """
UPDATE fhir_resource SET key_id = $4, body = $5
WHERE resource_type = $1 AND id = $2 AND version = $3
"""
UPDATE_VERSION = """
UPDATE fhir_resource_version SET key_id = $4, body = $5
WHERE resource_type = $1 AND id = $2 AND version = $3
"""
DELETE_TOKENS = "DELETE FROM fhir_token WHERE resource_type = $1 AND id = $2"
INSERT_TOKENS = """
INSERT INTO fhir_token (resource_type, id, kind, digest)
SELECT $1, $2, k, d FROM unnest($3::text[], $4::bytea[]) AS u(k, d)
"""
REMAINING = "SELECT (SELECT count(*) FROM {table} WHERE key_id <> $1)"
MAX_PASSES = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("generate", help="print a new random 64-hex key (for ENCRYPTION_KEY)")
    rotate = sub.add_parser("rotate", help="re-encrypt all rows under the active ENCRYPTION_KEY")
    rotate.add_argument("--batch-size", type=int, default=500, help="rows per transaction")


@dataclass
class Progress:
    current: int = 0
    versions: int = 0
    passes: int = 0


class Rotator:
    def __init__(self, keyring: Keyring, batch_size: int) -> None:
        self.keyring = keyring
        self.batch_size = batch_size
        self.active = keyring.active.key_id
        self.progress = Progress()

    def reseal(self, row: asyncpg.Record) -> tuple[bytes | None, bytes | None]:
        """(new ciphertext, plaintext) for a row; tombstones have neither."""
        if row["body"] is None:
            return None, None
        bound = aad(row["resource_type"], row["id"], row["version"])
        plaintext = self.keyring.decrypt(row["key_id"], row["body"], bound)
        return self.keyring.encrypt(plaintext, bound)[1], plaintext

    async def current_batch(
        self, conn: asyncpg.Connection, after: tuple[str, str]
    ) -> tuple[str, str] | None:
        async with conn.transaction():
            rows = await conn.fetch(CURRENT_BATCH, *after, self.active, self.batch_size)
            for row in rows:
                await self.rotate_current(conn, row)
        self.progress.current += len(rows)
        return (rows[-1]["resource_type"], rows[-1]["id"]) if rows else None

    async def rotate_current(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        rtype, rid = row["resource_type"], row["id"]
        blob, plaintext = self.reseal(row)
        await conn.execute(UPDATE_CURRENT, rtype, rid, row["version"], self.active, blob)
        await conn.execute(DELETE_TOKENS, rtype, rid)
        if plaintext is None:
            return  # a deleted resource has no tokens
        terms = index.extract(rtype, rid, orjson.loads(plaintext)).terms
        digests = [self.keyring.active.digest(kind, value) for kind, value in terms]
        await conn.execute(INSERT_TOKENS, rtype, rid, [k for k, _ in terms], digests)

    async def version_batch(
        self, conn: asyncpg.Connection, after: tuple[str, str, int]
    ) -> tuple[str, str, int] | None:
        async with conn.transaction():
            rows = await conn.fetch(
                VERSION_BATCH, after[0], after[1], self.active, self.batch_size, after[2]
            )
            for row in rows:
                blob, _ = self.reseal(row)
                await conn.execute(
                    UPDATE_VERSION,
                    row["resource_type"],
                    row["id"],
                    row["version"],
                    self.active,
                    blob,
                )
        self.progress.versions += len(rows)
        last = rows[-1] if rows else None
        return (last["resource_type"], last["id"], last["version"]) if last else None

    async def one_pass(self, conn: asyncpg.Connection) -> None:
        after: tuple[str, str] | None = ("", "")
        while after is not None:
            after = await self.current_batch(conn, after)
        version_after: tuple[str, str, int] | None = ("", "", 0)
        while version_after is not None:
            version_after = await self.version_batch(conn, version_after)
        self.progress.passes += 1

    async def remaining(self, conn: asyncpg.Connection) -> int:
        total = 0
        for table in ("fhir_resource", "fhir_resource_version"):
            total += await conn.fetchval(REMAINING.format(table=table), self.active)
        return total

    async def run(self, conn: asyncpg.Connection) -> Progress:
        """Passes until nothing is left under an old key (rows the API held locked come back)."""
        for _ in range(MAX_PASSES):
            await self.one_pass(conn)
            if await self.remaining(conn) == 0:
                return self.progress
            await asyncio.sleep(0.2)
        raise HealthstackError(
            "rows under old keys remain after repeated passes: is a replica still writing with an "
            "old ENCRYPTION_KEY? Deploy the new key everywhere, then rerun (safe to repeat)."
        )


async def rotate(url: str, keyring: Keyring, batch_size: int) -> Progress:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await Rotator(keyring, batch_size).run(conn)
    except DecryptionError as exc:
        raise HealthstackError(f"{exc}: add the missing key to ENCRYPTION_OLD_KEYS") from exc
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    if args.action == "generate":
        print(secrets.token_hex(32))
        return 0
    if args.batch_size < 1:
        raise HealthstackError("--batch-size must be >= 1")
    settings = Settings.from_env()
    if not settings.database_url:
        raise HealthstackError("DATABASE_URL (or DATABASE_URL_FILE) is required for keys rotate")
    keyring = Keyring.from_settings(settings)
    progress: Any = asyncio.run(rotate(settings.database_url, keyring, args.batch_size))
    print(
        f"rotated to key {keyring.active.key_id}: {progress.current} current rows, "
        f"{progress.versions} history rows, {progress.passes} pass(es)",
        file=sys.stdout,
    )
    return 0
