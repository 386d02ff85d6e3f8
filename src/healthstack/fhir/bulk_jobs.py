"""The bulk export job table (migration 0010): queueing, requester-only lookups, claims.

A job is visible only to the principal that queued it (same subject and client id): every other
caller gets the 404 an unknown id gets. Claims use ``FOR UPDATE SKIP LOCKED`` so replicas never
run one job twice, and a lease so a job whose runner died is taken over.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from healthstack.core.outcome import FhirError
from healthstack.security.principal import Principal

ACTIVE = ("queued", "running")
LEASE_SECONDS = 60

INSERT_SQL = """
INSERT INTO bulk_export (id, subject, client_id, principal, kind, group_id, params, base_url)
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb, $8)
"""
ACTIVE_COUNT_SQL = """
SELECT count(*) FROM bulk_export
WHERE subject = $1 AND client_id IS NOT DISTINCT FROM $2 AND status IN ('queued', 'running')
"""
MINE_SQL = """
SELECT * FROM bulk_export
WHERE id = $1 AND subject = $2 AND client_id IS NOT DISTINCT FROM $3
  AND status NOT IN ('cancelled', 'expired') AND (expires_at IS NULL OR expires_at > now())
"""
FILES_SQL = """
SELECT name, resource_type, count, is_error FROM bulk_export_file WHERE export_id = $1
ORDER BY is_error, resource_type, name
"""
CLAIM_SQL = f"""
UPDATE bulk_export SET status = 'running', lease_until = now() + interval '{LEASE_SECONDS} s',
                       progress = 'started'
WHERE id = (SELECT id FROM bulk_export
            WHERE status = 'queued' OR (status = 'running' AND lease_until < now())
            ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING *
"""
PROGRESS_SQL = f"""
UPDATE bulk_export SET progress = $2, lease_until = now() + interval '{LEASE_SECONDS} s'
WHERE id = $1 AND status = 'running' RETURNING 1
"""
FILE_SQL = """
INSERT INTO bulk_export_file (export_id, name, resource_type, count, is_error)
VALUES ($1, $2, $3, $4, $5)
"""
FINISH_SQL = """
UPDATE bulk_export SET status = $2, error = $3, progress = $2, finished_at = now(),
                       expires_at = now() + make_interval(secs => $4), lease_until = NULL
WHERE id = $1 AND status = 'running' RETURNING 1
"""
CANCEL_SQL = """
UPDATE bulk_export SET status = 'cancelled', finished_at = coalesce(finished_at, now())
WHERE id = $1 AND subject = $2 AND client_id IS NOT DISTINCT FROM $3
  AND status NOT IN ('cancelled', 'expired')
RETURNING id
"""
EXPIRE_SQL = """
UPDATE bulk_export SET status = 'expired'
WHERE status IN ('complete', 'failed') AND expires_at <= now() RETURNING id
"""
LIVE_SQL = """
SELECT id FROM bulk_export WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'running', 'complete')
"""
FORGET_FILES_SQL = "DELETE FROM bulk_export_file WHERE export_id = ANY($1::uuid[])"
CANCELLED_SQL = """
SELECT id FROM bulk_export WHERE status = 'cancelled' AND id IN
    (SELECT DISTINCT export_id FROM bulk_export_file)
"""


@dataclass(frozen=True)
class Job:
    id: uuid.UUID
    principal: Principal
    kind: str
    group_id: str | None
    params: dict[str, Any]
    base_url: str
    status: str
    progress: str
    error: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> Job:
        p = _json(row["principal"])
        principal = Principal(p["subject"], p.get("client_id"), frozenset(p.get("scopes", [])),
                              p.get("patient"), None, p.get("token_id"))  # fmt: skip
        return cls(row["id"], principal, row["kind"], row["group_id"], _json(row["params"]),
                   row["base_url"], row["status"], row["progress"], row["error"],
                   row["created_at"], row["expires_at"])  # fmt: skip


def _json(value: Any) -> dict[str, Any]:
    """A jsonb column: the pool's codec (service.db) decodes it; a bare connection gives text."""
    return dict(orjson.loads(value) if isinstance(value, str | bytes) else value)


def principal_json(principal: Principal) -> dict[str, Any]:
    # Never the break-glass reason: an export is not an emergency read and is not widened by one.
    return {"subject": principal.subject, "client_id": principal.client_id,
            "scopes": sorted(principal.scopes), "patient": principal.patient,
            "token_id": principal.token_id}  # fmt: skip


async def queue(conn: asyncpg.Connection, principal: Principal, kind: str, group_id: str | None,
                params: dict[str, Any], base_url: str, limit: int) -> uuid.UUID | None:  # fmt: skip
    """A new job, or None when the requester already has ``limit`` exports queued or running.
    A transaction-scoped advisory lock on the requester makes the check and insert atomic."""
    job_id = uuid.uuid4()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 16))",
                           f"bulk-export {principal.subject} {principal.client_id}")  # fmt: skip
        if await conn.fetchval(ACTIVE_COUNT_SQL, principal.subject, principal.client_id) >= limit:
            return None
        await conn.execute(INSERT_SQL, job_id, principal.subject, principal.client_id,
                           principal_json(principal), kind, group_id, params,
                           base_url)  # fmt: skip
    return job_id


def parse_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise not_found() from None


def not_found() -> FhirError:
    return FhirError(404, "not-found", "no such export (unknown, expired, cancelled or not yours)")


async def mine(conn: asyncpg.Connection, principal: Principal, job_id: uuid.UUID) -> Job:
    """The caller's job, if its token covers what the job's token could see: the same user and
    app, the same patient context (or none), and every scope the job ran with. A narrower token
    of the same user and app (a patient launch, reduced scopes) never reaches a wider export."""
    row = await conn.fetchrow(MINE_SQL, job_id, principal.subject, principal.client_id)
    if row is None:
        raise not_found()
    job = Job.of(row)
    owner = job.principal
    if principal.patient != owner.patient or not owner.scopes <= principal.scopes:
        raise not_found()
    return job


async def files(conn: asyncpg.Connection, job_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(await conn.fetch(FILES_SQL, job_id))


async def cancel(conn: asyncpg.Connection, principal: Principal, job_id: uuid.UUID) -> None:
    await mine(conn, principal, job_id)  # the same coverage rule as polling and downloads
    if await conn.fetchval(CANCEL_SQL, job_id, principal.subject, principal.client_id) is None:
        raise not_found()
