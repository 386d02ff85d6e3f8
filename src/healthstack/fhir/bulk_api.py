"""HTTP side of Bulk Data Access 2.0: ``$export`` kick-off, the status URL and file downloads.

Kick-off (``[base]/$export``, ``Patient/$export``, ``Group/{id}/$export``; GET or POST with a
Parameters body) needs ``Prefer: respond-async`` and answers 202 with ``Content-Location``. The
status and file URLs answer only the principal that asked (same ``sub`` and client id); anyone
else gets the 404 an unknown export gets, audited. See docs/bulk.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from starlette.concurrency import iterate_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from healthstack.core.dates import http_date, instant_text
from healthstack.core.outcome import FhirError, FhirResponse
from healthstack.fhir import bulk_export, bulk_jobs, bulk_params, bulk_runner
from healthstack.fhir.access import Caller
from healthstack.fhir.http import json_body, path_id, query_params
from healthstack.fhir.ops import TYPES, Engine
from healthstack.security import authz
from healthstack.security.sealed_files import open_sealed
from healthstack.service.state import ServiceState

Handler = Callable[[Request], Awaitable[Response]]
NDJSON = "application/fhir+ndjson"
RETRY_SECONDS = 1
MAX_QUERY = 4096  # the kick-off query kept for the manifest's `request` (already validated)
BULK = "Patient"  # the audit records' resource type for export bookkeeping (patient data)


class Host(Protocol):
    state: ServiceState

    @property
    def engine(self) -> Engine: ...

    def base(self, request: Request) -> str: ...

    def caller(self, request: Request) -> Caller: ...

    def guarded(self, handler: Handler, interaction: str | None = None,
                resource_type: str | None = None) -> Handler: ...  # fmt: skip


class BulkApi:
    def __init__(self, host: Host) -> None:
        self.host = host

    @property
    def state(self) -> ServiceState:
        return self.host.state

    def runner(self) -> bulk_runner.Runner:
        runner = self.state.extras.get(bulk_runner.RUNNER)
        if not isinstance(runner, bulk_runner.Runner):
            raise FhirError(503, "transient", "bulk export is not available yet; retry")
        return runner

    # -- kick-off ---------------------------------------------------------------------------------
    async def system(self, request: Request) -> Response:
        return await self._kick_off(request, "system", None)

    async def patient(self, request: Request) -> Response:
        return await self._kick_off(request, "patient", None)

    async def group(self, request: Request) -> Response:
        return await self._kick_off(request, "group", path_id(request))

    async def _kick_off(self, request: Request, kind: str, group_id: str | None) -> Response:
        if "respond-async" not in [p.strip() for p in request.headers.get("prefer", "").split(",")]:
            raise FhirError(400, "invalid", "$export is asynchronous: send Prefer: respond-async")
        if len(request.url.query) > MAX_QUERY:
            raise FhirError(400, "too-long", f"the $export query is over {MAX_QUERY} characters")
        raw = query_params(request)
        if request.method == "POST":
            raw += bulk_params.from_parameters(await json_body(request))
        params = bulk_params.parse(raw)
        caller, runner = self.host.caller(request), self.runner()
        await self._authorize(caller, kind, params)
        async with self.state.require_pool().acquire() as conn:
            if group_id is not None:
                confined = caller.patient_for("Group")
                await self.host.engine.store.read(conn, "Group", group_id, confined)  # 404
            stored = {**params.to_json(), "query": request.url.query}
            job_id = await bulk_jobs.queue(
                conn, caller.principal, kind, group_id, stored, self.host.base(request),
                self.state.settings.bulk_export_max_concurrent,
            )  # fmt: skip
            if job_id is None:
                raise FhirError(429, "throttled", "an export of yours is still running; retry "
                                "after it completes", headers={"Retry-After": "30"})  # fmt: skip
            await caller.audit(conn, "operation", "Group" if group_id else BULK,
                               resource_id=group_id, query=_audit_query(job_id, kind, params),
                               detail=f"$export kick-off ({kind})")  # fmt: skip
        runner.wake.set()
        location = f"{self.host.base(request)}/bulk-status/{job_id}"
        return Response(status_code=202, headers={"Content-Location": location})

    async def _authorize(self, caller: Caller, kind: str, params: bulk_params.ExportParams
                         ) -> None:  # fmt: skip
        if kind == "group":
            if caller.principal.patient is not None:
                # Group is in no patient's compartment: a 202 or 404 would say which groups exist.
                raise FhirError(403, "forbidden", "Group/$export needs a token without a patient "
                                "context; use Patient/$export")  # fmt: skip
            await caller.authorize("Group", "read", detail="$export")
        for rtype in params.types:  # each type asked for by name must be permitted
            await caller.authorize(rtype, "search", granular=True, detail="$export")
        if not params.types and not any(
            authz.allowed(caller.principal, t, "search", granular=True) for t in TYPES
        ):
            await caller.authorize("Patient", "search", detail="$export")

    # -- status -----------------------------------------------------------------------------------
    async def status(self, request: Request) -> Response:
        job_id, caller = bulk_jobs.parse_id(request.path_params["id"]), self.host.caller(request)
        async with self.state.require_pool().acquire() as conn:
            job = await bulk_jobs.mine(conn, caller.principal, job_id)
            files = await bulk_jobs.files(conn, job.id) if job.status == "complete" else []
            await caller.audit(conn, "operation", BULK, query={"export": [str(job.id)]},
                               detail=f"$export status: {job.status}")  # fmt: skip
        if job.status in bulk_jobs.ACTIVE:
            return Response(status_code=202, headers={
                "X-Progress": job.progress or job.status, "Retry-After": str(RETRY_SECONDS)})  # fmt: skip
        if job.status == "failed":
            raise FhirError(500, "exception", job.error or "the export failed")
        return FhirResponse(self._manifest(job, files), headers=_expires(job))

    def _manifest(self, job: bulk_jobs.Job, files: list[Any]) -> dict[str, Any]:
        base = f"{job.base_url}/bulk-files/{job.id}"

        def item(row: Any) -> dict[str, Any]:
            return {"type": row["resource_type"], "url": f"{base}/{row['name']}",
                    "count": row["count"]}  # fmt: skip

        request = f"{job.base_url}/" + {"system": "$export", "patient": "Patient/$export",
                                         "group": f"Group/{job.group_id}/$export"}[job.kind]  # fmt: skip
        if job.params.get("query"):
            request += f"?{job.params['query']}"
        return {
            "transactionTime": instant_text(job.created_at),
            "request": request,
            "requiresAccessToken": True,
            "output": [item(r) for r in files if not r["is_error"]],
            "error": [item(r) for r in files if r["is_error"]],
        }

    async def cancel(self, request: Request) -> Response:
        job_id, caller = bulk_jobs.parse_id(request.path_params["id"]), self.host.caller(request)
        runner = self.runner()
        async with self.state.require_pool().acquire() as conn, conn.transaction():
            await bulk_jobs.cancel(conn, caller.principal, job_id)
            await conn.execute(bulk_jobs.FORGET_FILES_SQL, [job_id])
            await caller.audit(conn, "operation", BULK, query={"export": [str(job_id)]},
                               detail="$export cancelled")  # fmt: skip
        await runner.storage.remove(job_id)
        return Response(status_code=202)

    # -- files --------------------------------------------------------------------------------------
    async def download(self, request: Request) -> Response:
        job_id, caller = bulk_jobs.parse_id(request.path_params["id"]), self.host.caller(request)
        name, runner = request.path_params["name"], self.runner()
        async with self.state.require_pool().acquire() as conn:
            job = await bulk_jobs.mine(conn, caller.principal, job_id)
            listed = {r["name"] for r in await bulk_jobs.files(conn, job.id)}
            if job.status != "complete" or name not in listed:
                raise bulk_jobs.not_found()
            try:
                handle = await asyncio.to_thread(runner.storage.open, job.id, name)
            except FileNotFoundError:
                raise bulk_jobs.not_found() from None
            await caller.audit(conn, "operation", BULK,
                               query={"export": [str(job.id)], "file": [name]},
                               detail="$export file download")  # fmt: skip
        label = bulk_export.file_label(job.id, name)
        keyring = self.host.engine.keyring

        def chunks() -> Iterator[bytes]:
            with handle:
                yield from open_sealed(keyring, label, handle)

        return StreamingResponse(iterate_in_threadpool(chunks()), media_type=NDJSON)

    def routes(self) -> list[Route]:
        g = self.host.guarded
        both = ["GET", "POST"]
        return [
            Route("/$export", g(self.system, "operation", BULK), methods=both),
            Route("/Patient/$export", g(self.patient, "operation", BULK), methods=both),
            Route("/Group/{id}/$export", g(self.group, "operation", "Group"), methods=both),
            Route("/bulk-status/{id}", g(self.status, "operation", BULK), methods=["GET"]),
            Route("/bulk-status/{id}", g(self.cancel, "operation", BULK), methods=["DELETE"]),
            Route(
                "/bulk-files/{id}/{name}",
                accepting_ndjson(g(self.download, "operation", BULK)),
                methods=["GET"],
            ),
        ]


def _audit_query(job_id: object, kind: str, params: bulk_params.ExportParams) -> dict[str, Any]:
    return {"export": [str(job_id)], "kind": [kind], "_type": params.types,
            "_typeFilter": sorted(params.filters)}  # fmt: skip


def _expires(job: bulk_jobs.Job) -> dict[str, str]:
    return {"Expires": http_date(job.expires_at)} if job.expires_at else {}


def accepting_ndjson(handler: Handler) -> Handler:
    """File downloads may ask for ``Accept: application/fhir+ndjson``: the FHIR router's JSON
    negotiation must not refuse it (the header is dropped before the guarded handler reads it)."""

    async def endpoint(request: Request) -> Response:
        accept = request.scope.get("headers", [])
        request.scope["headers"] = [
            (k, v) for k, v in accept
            if k != b"accept" or b"ndjson" not in v
        ]  # fmt: skip
        return await handler(request)

    return endpoint
