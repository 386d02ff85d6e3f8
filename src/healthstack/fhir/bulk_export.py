"""Running one bulk export: stream every permitted resource from the database in keyset-paged
batches, decrypt, filter, and append it to a sealed NDJSON file per type (bounded memory: one
batch and one file chunk at a time, whatever the export's size).

Authorization is the requester's, replayed from the job row: a type is exported only if their
scopes allow searching it (granular scopes narrow it as they narrow a search), and a
patient-context token or a Patient/Group export is confined to patient compartments
(``fhir_resource.compartment``, filled from the official CompartmentDefinition). What was sent
is recorded as disclosures, one audit record per patient (docs/bulk.md).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from healthstack.core.crypto import Keyring, aad
from healthstack.core.outcome import issue, outcome_body
from healthstack.fhir import granular, ops, searchdefs
from healthstack.fhir.bulk_jobs import Job
from healthstack.fhir.bulk_params import ExportParams
from healthstack.fhir.store import Store
from healthstack.security import audit, authz
from healthstack.security.audit_event import AuditEvent
from healthstack.security.sealed_files import SealedWriter

BATCH = 500
# One page of one type: keyset on the primary key, so each statement is short and the export
# holds no transaction or cursor open between batches.
PAGE_SQL = """
SELECT id, version, key_id, body, patient_id, compartment
FROM fhir_resource
WHERE resource_type = $1 AND NOT deleted AND id > $2
  AND ($3::timestamptz IS NULL OR last_updated > $3)
  AND (NOT $4 OR patient_id IS NOT NULL OR compartment IS NOT NULL)
  AND ($5::text[] IS NULL OR patient_id = ANY($5) OR compartment && $5)
ORDER BY id LIMIT $6
"""
GROUP_SQL = """
SELECT version, key_id, body FROM fhir_resource WHERE resource_type = 'Group' AND id = $1 AND NOT deleted
"""


class Cancelled(Exception):
    """The job was cancelled (DELETE on its status URL) while it ran."""


Progress = Callable[[str], Any]  # awaitable: records progress, raises Cancelled


@dataclass
class Output:
    name: str
    resource_type: str
    count: int
    is_error: bool = False


@dataclass
class Run:
    job: Job
    directory: Path
    outputs: list[Output] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # patient id -> resources sent per type: what the disclosure records say.
    disclosed: dict[str, Counter[str]] = field(default_factory=dict)


def file_label(job_id: object, name: str) -> str:
    return f"bulk-export/{job_id}/{name}"


def types_for(job: Job, params: ExportParams) -> list[str]:
    principal = job.principal
    wanted = params.types or sorted(ops.TYPES)
    if job.kind != "system" or principal.patient is not None:
        wanted = [t for t in wanted if searchdefs.in_some_compartment(t)]
    return [t for t in wanted if authz.allowed(principal, t, "search", granular=True)]


async def run(store: Store, conn: asyncpg.Connection, run: Run,
              progress: Progress) -> None:  # fmt: skip
    job, params = run.job, ExportParams.from_json(run.job.params)
    patients = await _patients(store, conn, run)
    run.directory.mkdir(parents=True, exist_ok=True)
    for rtype in types_for(job, params):
        count = await _export_type(store, conn, run, params, rtype, patients, progress)
        if count:
            run.outputs.append(Output(f"{rtype}-1.ndjson", rtype, count))
    if run.errors:
        _write_errors(store, run)


async def _patients(store: Store, conn: asyncpg.Connection, run: Run) -> list[str] | None:
    """The patient compartments the export is confined to (None: every patient, or none)."""
    job = run.job
    confined = authz.patient_scope(job.principal, "search")
    if job.kind != "group":
        return [confined] if confined else None
    row = await conn.fetchrow(GROUP_SQL, job.group_id)
    if row is None:
        run.errors.append(issue("not-found", "the Group was deleted before the export ran"))
        return []
    plaintext = store.keyring.decrypt(row["key_id"], row["body"],
                                      aad("Group", str(job.group_id), row["version"]))  # fmt: skip
    members = orjson.loads(plaintext).get("member", [])
    ids: list[str] = []
    for number, member in enumerate(members, start=1):
        ref = (member.get("entity") or {}).get("reference", "") if isinstance(member, dict) else ""
        kind, _, pid = ref.partition("/")
        if kind != "Patient" or not pid or "/" in pid:
            run.errors.append(issue("not-supported", f"Group member {number} of {len(members)} "
                                    "is not a Patient reference; skipped"))  # fmt: skip
        elif member.get("inactive") is not True:
            ids.append(pid)
    if confined is not None:
        ids = [p for p in ids if p == confined]
    return ids


async def _export_type(store: Store, conn: asyncpg.Connection, run: Run, params: ExportParams,
                       rtype: str, patients: list[str] | None, progress: Progress) -> int:  # fmt: skip
    job = run.job
    restrictions = authz.restrictions(job.principal, rtype, "search")
    filters = params.filters.get(rtype)
    any_patient = job.kind == "patient" and patients is None
    name, count = f"{rtype}-1.ndjson", 0
    path = run.directory / name

    def page(after: str) -> asyncio.Task[list[asyncpg.Record]]:
        return asyncio.ensure_future(conn.fetch(PAGE_SQL, rtype, after, params.since, any_patient,
                                                patients, BATCH))  # fmt: skip

    with path.open("wb") as sink:
        writer = SealedWriter(store.keyring, file_label(job.id, name), sink)
        rows, following = await page(""), None
        try:
            while True:
                # The next page is asked for before this one is decrypted: the database works on
                # it while this process does (one page in flight, one in hand: bounded memory).
                following = page(rows[-1]["id"]) if len(rows) == BATCH else None
                await asyncio.sleep(0)  # let the query go out
                for row in rows:
                    if _write(store.keyring, writer, run, rtype, row, restrictions, filters):
                        count += 1
                if following is None:
                    break
                rows, following = await following, None
                await progress(f"exporting {rtype}: {count} resources")
        finally:
            if following is not None:  # failed mid-page: the connection must be idle again
                await asyncio.wait([following])
        writer.close()
    if not count:
        path.unlink()
    return count


def _write(keyring: Keyring, writer: SealedWriter, run: Run, rtype: str, row: asyncpg.Record,
           restrictions: Sequence[authz.Restriction] | None,
           filters: list[list[tuple[str, str]]] | None) -> bool:  # fmt: skip
    rid = row["id"]
    body = keyring.decrypt(row["key_id"], row["body"], aad(rtype, rid, row["version"]))
    if not granular.permits(rtype, body, restrictions):
        return False
    if filters is not None:
        resource = orjson.loads(body)
        if not any(granular.matches(rtype, resource, tuple(f)) for f in filters):
            return False
    writer.write(body + b"\n")
    disclosed = run.disclosed
    for patient in row["compartment"] or ((row["patient_id"],) if row["patient_id"] else ()):
        counts = disclosed.get(patient)
        if counts is None:
            counts = disclosed[patient] = Counter()
        counts[rtype] += 1
    return True


def _write_errors(store: Store, run: Run) -> None:
    name = "OperationOutcome-error-1.ndjson"
    with (run.directory / name).open("wb") as sink:
        writer = SealedWriter(store.keyring, file_label(run.job.id, name), sink)
        for item in run.errors:
            writer.write(orjson.dumps(outcome_body([item])) + b"\n")
        writer.close()
    run.outputs.append(Output(name, "OperationOutcome", len(run.errors), is_error=True))


def disclosures(run: Run) -> list[AuditEvent]:
    """One ``disclosure`` record per patient whose data the export holds (COMMON convention)."""
    job = run.job
    events = []
    for patient, counts in run.disclosed.items():
        query = {"kind": "bulk-export", "export": str(job.id), "types": sorted(counts),
                 "counts": [f"{t}:{n}" for t, n in sorted(counts.items())]}  # fmt: skip
        events.append(audit.event_for(
            job.principal, "disclosure", "success", resource_type="Patient",
            resource_id=patient, query=query,
            detail=f"bulk export {job.id}: {sum(counts.values())} resources of "
                   f"{len(counts)} types",
        ))  # fmt: skip
    return events
