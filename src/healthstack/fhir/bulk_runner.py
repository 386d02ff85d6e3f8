"""The bulk export runner: an asyncio task in every replica that claims queued jobs
(``FOR UPDATE SKIP LOCKED``), runs them one at a time, and sweeps expired and cancelled output.

Idle, it polls with a back-off up to :data:`IDLE_MAX` seconds; a kick-off in the same process
wakes it at once. A job is finished (files listed, disclosures audited, status complete) in one
transaction, so a manifest never lists a file whose disclosure is not in the trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path

import asyncpg

from healthstack.fhir import bulk_export, bulk_jobs, bulk_storage
from healthstack.fhir.bulk_jobs import Job
from healthstack.fhir.store import Store
from healthstack.security import audit
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.bulk")
IDLE_MIN, IDLE_MAX = 0.05, 2.0
RUNNER = "bulk_runner"  # state.extras key


class Runner:
    def __init__(self, state: ServiceState, store: Store) -> None:
        self.state, self.store = state, store
        self.storage = bulk_storage.storage_for(state.settings)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name="bulk-export-runner")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _loop(self) -> None:
        idle = IDLE_MIN
        while True:
            try:
                worked = await self.step()
            except Exception as error:
                # The database, the bucket (botocore's errors are not OSErrors) or a bug: logged
                # by type, retried with back-off; the runner task must never end.
                log.error("bulk export runner error", extra={"error": type(error).__name__})
                worked = False
            idle = IDLE_MIN if worked else min(idle * 2, IDLE_MAX)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), idle)
            self.wake.clear()

    async def step(self) -> bool:
        """Sweep, then run one claimed job; whether there was a job."""
        pool = self.state.require_pool()
        async with pool.acquire() as conn:
            await self.sweep(conn)
            row = await conn.fetchrow(bulk_jobs.CLAIM_SQL)
            if row is None:
                return False
            await self.execute(conn, Job.of(row))
        return True

    async def execute(self, conn: asyncpg.Connection, job: Job) -> None:
        run = bulk_export.Run(job, self.storage.staging(job.id))
        await self.storage.remove(job.id)  # a job taken over from a dead runner starts afresh

        async def progress(text: str) -> None:
            if await conn.fetchval(bulk_jobs.PROGRESS_SQL, job.id, text) is None:
                raise bulk_export.Cancelled

        try:
            await bulk_export.run(self.store, conn, run, progress)
            await self.storage.publish(job.id, [output.name for output in run.outputs])
            await self._finish(conn, run)
        except bulk_export.Cancelled:
            await self.storage.remove(job.id)
        except Exception as error:  # a failed export answers its poller; the runner lives on
            log.error("bulk export failed", extra={"error": type(error).__name__})
            await self.storage.remove(job.id)
            await conn.execute(bulk_jobs.FINISH_SQL, job.id, "failed",
                               f"the export failed ({type(error).__name__})",
                               float(self.state.settings.bulk_export_expiry))  # fmt: skip

    async def _finish(self, conn: asyncpg.Connection, run: bulk_export.Run) -> None:
        job = run.job
        async with conn.transaction():
            expiry = float(self.state.settings.bulk_export_expiry)
            if await conn.fetchval(bulk_jobs.FINISH_SQL, job.id, "complete", None, expiry) is None:
                raise bulk_export.Cancelled
            await conn.executemany(bulk_jobs.FILE_SQL, [
                (job.id, o.name, o.resource_type, o.count, o.is_error) for o in run.outputs
            ])  # fmt: skip
            events = bulk_export.disclosures(run)
            for start in range(0, len(events), 1000):
                await audit.record_many(conn, self.state, events[start : start + 1000])

    async def sweep(self, conn: asyncpg.Connection) -> None:
        """Delete the files of expired exports and of cancelled ones (then forget them)."""
        expired = [r["id"] for r in await conn.fetch(bulk_jobs.EXPIRE_SQL)]
        cancelled = [r["id"] for r in await conn.fetch(bulk_jobs.CANCELLED_SQL)]
        for job_id in (*expired, *cancelled):
            await self.storage.remove(job_id)
        if expired or cancelled:
            await conn.execute(bulk_jobs.FORGET_FILES_SQL, [*expired, *cancelled])
        await self._sweep_local(conn)

    async def _sweep_local(self, conn: asyncpg.Connection) -> None:
        """Local directories of exports no longer live: another replica expired or cancelled
        them (the database says so; this replica's disk is its own)."""
        names = await asyncio.to_thread(_directories, self.storage.root)
        if names:
            live = {str(r["id"]) for r in await conn.fetch(bulk_jobs.LIVE_SQL, names)}
            for name in set(names) - live:
                await self.storage.remove(name)


def _directories(root: Path) -> list[str]:
    """Export directories (uuid names) under ``root``; nothing else there is touched."""
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    out = []
    for entry in entries:
        with contextlib.suppress(ValueError):
            if str(uuid.UUID(entry.name)) == entry.name and entry.is_dir():
                out.append(entry.name)
    return out


async def start(state: ServiceState, store: Store) -> None:
    runner = Runner(state, store)
    state.extras[RUNNER] = runner
    runner.start()


async def stop(state: ServiceState) -> None:
    runner = state.extras.pop(RUNNER, None)
    if isinstance(runner, Runner):
        await runner.stop()
