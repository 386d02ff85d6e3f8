"""``healthstack keys generate|rotate``: PHI encryption keys.

``rotate`` re-encrypts every stored resource (current rows and history) under the active
``ENCRYPTION_KEY`` and rebuilds the blind-index tokens of current rows, while the API serves:
small transactions, rows locked by the API skipped (``FOR UPDATE SKIP LOCKED``) and revisited,
progress kept in the data itself (each row's key id), so an interrupted run resumes and a repeated
run changes nothing. Procedure: deploy the new key as ``ENCRYPTION_KEY`` with the old one in
``ENCRYPTION_OLD_KEYS``, run ``keys rotate`` (as the schema owner: MIGRATION_DATABASE_URL), then
drop the old key. Break-glass reasons in the audit trail are re-sealed too (into ``audit_reason``),
the rotation is itself an audit record, progress shows as a bar on a terminal or periodic lines
in logs (healthstack.ops.progress), and a summary table ends the run. See docs/fhir.md.
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
from healthstack.core.crypto import DecryptionError, Keyring, aad
from healthstack.errors import HealthstackError
from healthstack.fhir.store import search_terms
from healthstack.ops.progress import Meter, duration, summary_table
from healthstack.security import audit

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
REASON_BATCH = """
SELECT l.chain_id, l.seq, l.content::jsonb->>'break_glass_reason' AS stored,
       r.key_id AS resealed_key, r.ciphertext AS resealed
FROM audit_log l LEFT JOIN audit_reason r USING (chain_id, seq)
WHERE l.break_glass AND (l.chain_id, l.seq) > ($1, $2)
ORDER BY l.chain_id, l.seq LIMIT $3
"""
UPSERT_REASON = """
INSERT INTO audit_reason (chain_id, seq, key_id, ciphertext) VALUES ($1, $2, $3, $4)
ON CONFLICT (chain_id, seq) DO UPDATE SET key_id = EXCLUDED.key_id,
    ciphertext = EXCLUDED.ciphertext, resealed_at = now()
"""
AUDIT_SQL = "SELECT audit_append(0, $1)"
# Auditors' review notes (console, migration 0011): sealed under the PHI key, re-sealed in place.
NOTE_BATCH = """
SELECT chain_id, seq, note_key, note FROM audit_review
WHERE note_key <> $1 AND (chain_id, seq) > ($2, $3) ORDER BY chain_id, seq LIMIT $4
"""
UPDATE_NOTE = "UPDATE audit_review SET note_key = $3, note = $4 WHERE chain_id = $1 AND seq = $2"
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
    reasons: int = 0
    notes: int = 0
    passes: int = 0

    def line(self) -> str:
        return (f"{self.current} current rows, {self.versions} history rows, "
                f"{self.reasons} break-glass reasons, {self.notes} review notes")  # fmt: skip


class Rotator:
    def __init__(self, keyring: Keyring, batch_size: int, meter: Meter | None = None) -> None:
        self.keyring = keyring
        self.batch_size = batch_size
        self.active = keyring.active.key_id
        self.progress = Progress()
        # Counts resource rows (current and history): the bulk of the work, known up front.
        self.meter = meter

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
        self.report()
        return (rows[-1]["resource_type"], rows[-1]["id"]) if rows else None

    def report(self) -> None:
        if self.meter is not None:
            rows = self.progress.current + self.progress.versions
            self.meter.update(rows - self.meter.done)

    async def rotate_current(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        rtype, rid = row["resource_type"], row["id"]
        blob, plaintext = self.reseal(row)
        await conn.execute(UPDATE_CURRENT, rtype, rid, row["version"], self.active, blob)
        await conn.execute(DELETE_TOKENS, rtype, rid)
        if plaintext is None:
            return  # a deleted resource has no tokens
        terms = search_terms(rtype, rid, orjson.loads(plaintext))
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
        self.report()
        last = rows[-1] if rows else None
        return (last["resource_type"], last["id"], last["version"]) if last else None

    async def one_pass(self, conn: asyncpg.Connection) -> None:
        after: tuple[str, str] | None = ("", "")
        while after is not None:
            after = await self.current_batch(conn, after)
        version_after: tuple[str, str, int] | None = ("", "", 0)
        while version_after is not None:
            version_after = await self.version_batch(conn, version_after)
        reason_after: tuple[int, int] | None = (-1, 0)
        while reason_after is not None:
            reason_after = await self.reason_batch(conn, reason_after)
        note_after: tuple[int, int] | None = (-1, 0)
        while note_after is not None:
            note_after = await self.note_batch(conn, note_after)
        self.progress.passes += 1

    async def note_batch(
        self, conn: asyncpg.Connection, after: tuple[int, int]
    ) -> tuple[int, int] | None:
        """Review notes not under the active key, decrypted and sealed again in place."""
        async with conn.transaction():
            rows = await conn.fetch(NOTE_BATCH, self.active, *after, self.batch_size)
            for row in rows:
                bound = audit.review_note_aad(row["chain_id"], row["seq"])
                note = self.keyring.decrypt(row["note_key"], bytes(row["note"]), bound)
                _, blob = self.keyring.encrypt(note, bound)
                await conn.execute(UPDATE_NOTE, row["chain_id"], row["seq"], self.active, blob)
        self.progress.notes += len(rows)
        if rows:
            self.report()
        return (rows[-1]["chain_id"], rows[-1]["seq"]) if rows else None

    async def reason_batch(
        self, conn: asyncpg.Connection, after: tuple[int, int]
    ) -> tuple[int, int] | None:
        """Break-glass reasons not yet under the active key, re-sealed into ``audit_reason``.

        The chained record is immutable (its hash covers the old ciphertext); the re-sealed copy
        beside it is what auditors read once the old key is retired (docs/audit.md)."""
        async with conn.transaction():
            rows = await conn.fetch(REASON_BATCH, *after, self.batch_size)
            due = [r for r in rows if _reason_key(r) != self.active]
            for row in due:
                reason = audit.open_reason(self.keyring, _stored_reason(row), _resealed(row),
                                           row["chain_id"], row["seq"])  # fmt: skip
                if reason.startswith("[encrypted under key "):
                    raise HealthstackError(
                        "a break-glass reason is under a key that is not configured: "
                        "add it to ENCRYPTION_OLD_KEYS"
                    )
                bound = audit.resealed_aad(row["chain_id"], row["seq"])
                _, blob = self.keyring.encrypt(reason.encode(), bound)
                await conn.execute(UPSERT_REASON, row["chain_id"], row["seq"], self.active, blob)
        self.progress.reasons += len(due)
        if due:
            self.report()
        return (rows[-1]["chain_id"], rows[-1]["seq"]) if rows else None

    async def remaining(self, conn: asyncpg.Connection) -> int:
        total = 0
        for table in ("fhir_resource", "fhir_resource_version"):
            total += await conn.fetchval(REMAINING.format(table=table), self.active)
        return total

    async def run(self, conn: asyncpg.Connection) -> Progress:
        """Passes until nothing is left under an old key (rows the API held locked come back)."""
        if self.meter is not None:
            self.meter.set_total(await self.remaining(conn))
        for _ in range(MAX_PASSES):
            await self.one_pass(conn)
            if await self.remaining(conn) == 0:
                return self.progress
            await asyncio.sleep(0.2)
        raise HealthstackError(
            "rows under old keys remain after repeated passes: is a replica still writing with an "
            "old ENCRYPTION_KEY? Deploy the new key everywhere, then rerun (safe to repeat)."
        )


def _stored_reason(row: asyncpg.Record) -> str:
    return str(row["stored"] or "")


def _resealed(row: asyncpg.Record) -> tuple[str, bytes] | None:
    return (row["resealed_key"], row["resealed"]) if row["resealed"] is not None else None


def _reason_key(row: asyncpg.Record) -> str | None:
    """The key id a reason is readable under now (the re-sealed copy's, else the chained one's)."""
    if row["resealed"] is not None:
        return str(row["resealed_key"])
    stored = _stored_reason(row)
    if not stored.startswith(audit.REASON_PREFIX):
        return None  # written before sealing: nothing to re-seal
    return stored[len(audit.REASON_PREFIX) :].partition(":")[0]


async def _audit(conn: asyncpg.Connection, outcome: str, detail: str) -> None:
    """The rotation itself is an audited event (who: the command; what: counts, never data)."""
    content = {"interaction": "key-rotation", "outcome": outcome,
               "subject": "healthstack keys rotate", "detail": detail}  # fmt: skip
    await conn.execute(AUDIT_SQL, orjson.dumps(content).decode())


async def rotate(
    url: str, keyring: Keyring, batch_size: int, meter: Meter | None = None
) -> Progress:
    conn = await asyncpg.connect(url, timeout=10)
    rotator = Rotator(keyring, batch_size, meter)
    try:
        progress = await rotator.run(conn)
    except (DecryptionError, HealthstackError) as exc:
        await _audit(conn, "error", f"to key {keyring.active.key_id}: stopped after "
                     f"{rotator.progress.line()}")  # fmt: skip
        if isinstance(exc, HealthstackError):
            raise
        raise HealthstackError(f"{exc}: add the missing key to ENCRYPTION_OLD_KEYS") from exc
    else:
        await _audit(conn, "success", f"to key {keyring.active.key_id}: {progress.line()}")
        return progress
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    if args.action == "generate":
        print(secrets.token_hex(32))
        return 0
    if args.batch_size < 1:
        raise HealthstackError("--batch-size must be >= 1")
    settings = Settings.from_env()
    if not settings.migration_database_url:
        # History rows are append-only for the service role (DATABASE_URL): re-encrypting them is
        # the schema owner's job, like a migration.
        raise HealthstackError(
            "MIGRATION_DATABASE_URL (or MIGRATION_DATABASE_URL_FILE) is required for keys rotate"
        )
    keyring = Keyring.from_settings(settings)
    with Meter("keys rotate", unit="rows") as meter:
        url = settings.migration_database_url
        progress: Any = asyncio.run(rotate(url, keyring, args.batch_size, meter))
    print(
        f"rotated to key {keyring.active.key_id}: {progress.line()}, {progress.passes} pass(es)",
        file=sys.stdout,
    )
    print(summary_table("keys rotate", [
        ("active key", keyring.active.key_id),
        ("current rows", str(progress.current)),
        ("history rows", str(progress.versions)),
        ("break-glass reasons", str(progress.reasons)),
        ("review notes", str(progress.notes)),
        ("passes", str(progress.passes)),
        ("elapsed", duration(meter.elapsed())),
    ]))  # fmt: skip
    return 0
