"""``batch`` and ``transaction`` Bundles POSTed to the service base.

A transaction is one database transaction: ``urn:uuid:`` fullUrls are mapped to ids first
(conditional creates resolve to the existing resource), references are rewritten, entries run in
FHIR's order (DELETE, POST, PUT, GET) and any failure rolls everything back. A batch runs each
entry in a transaction of its own and reports each outcome; an entry that cannot be parsed (a
malformed URL) fails alone in a batch and fails the whole of a transaction.

``PUT``/``DELETE`` entries whose URL is ``Type?criteria`` are conditional updates and deletes
(:mod:`conditional`). In a transaction a conditional update with a ``fullUrl`` is matched up
front, like a conditional create, so references to that ``fullUrl`` point at the resource it
updates or creates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import asyncpg
import orjson

from healthstack.core.dates import instant_text
from healthstack.core.outcome import FhirError, outcome_body
from healthstack.fhir import bundle_ops, conditional, ops, patch
from healthstack.fhir.access import Caller
from healthstack.fhir.store import Version, new_id
from healthstack.fhir.validate import ID_RE
from healthstack.numbers import INT4_MAX, ascii_int

METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3}
MAX_ENTRIES = 1000
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}
T = TypeVar("T")


@dataclass
class Entry:
    index: int
    method: str
    rtype: str
    rid: str | None
    query: list[tuple[str, str]]
    resource: Any
    full_url: str | None
    if_none_exist: str | None
    if_match: int | None
    assigned: str | None = None  # transaction POST or unmatched conditional PUT: id chosen up front
    existing: Version | None = None  # transaction conditional create that matched
    error: FhirError | None = None  # batch: the entry could not be parsed
    operation: str | None = None  # GET Observation/$lastn, GET Patient/{id}/$everything


def _bad(index: int, message: str) -> FhirError:
    return FhirError(
        400, "invalid", f"Bundle.entry[{index}]: {message}", expression=f"Bundle.entry[{index}]"
    )


def parse_if_match(raw: str | None, where: str = "If-Match") -> int | None:
    if raw is None:
        return None
    version = ascii_int(raw.strip().removeprefix("W/").strip('"'), INT4_MAX)
    if version is None:
        raise FhirError(400, "invalid", f'{where} must look like W/"3"')
    return version


def parse_entry(index: int, raw: Any) -> Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _bad(index, "needs a request")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in METHOD_ORDER or not isinstance(url, str) or not url:
        raise _bad(index, "request.method must be GET, POST, PUT, PATCH or DELETE with a url")
    path, _, query = url.partition("?")
    parts = path.strip("/").split("/")
    ops.check_type(parts[0])
    operation = parts.pop() if method == "GET" and parts[-1].startswith("$") else None
    if operation and (parts[0], len(parts) == 2, operation) not in bundle_ops.SUPPORTED:
        raise _bad(index, "the operations answered in Bundle entries are GET Observation/$lastn "
                   "and GET Patient/{id}/$everything")  # fmt: skip
    rid = parts[1] if len(parts) > 1 else None
    if (
        len(parts) > 2
        or (method in ("PUT", "DELETE") and rid is None and not query)
        or (method == "PATCH" and rid is None)
        or (method == "POST" and rid)
    ):
        raise _bad(index, "request.url does not fit the method (e.g. POST Patient, PUT Patient/id "
                   "or PUT Patient?criteria)")  # fmt: skip
    if rid is not None and not ID_RE.fullmatch(rid):
        raise _bad(index, "request.url has an id that is not a FHIR id ([A-Za-z0-9-.]{1,64})")
    if method in ("POST", "PUT", "PATCH") and not isinstance(raw.get("resource"), dict):
        raise _bad(index, f"{method} needs a resource")
    for name, value in (("request.ifNoneExist", request.get("ifNoneExist")),
                        ("request.ifMatch", request.get("ifMatch")),
                        ("fullUrl", raw.get("fullUrl"))):  # fmt: skip
        if value is not None and not isinstance(value, str):
            raise _bad(index, f"{name} must be a string")
    return Entry(
        index,
        method,
        parts[0],
        rid,
        parse_qsl(query, keep_blank_values=True),
        raw.get("resource"),
        raw.get("fullUrl"),
        request.get("ifNoneExist"),
        parse_if_match(request.get("ifMatch"), "ifMatch"),
        operation=operation,
    )


def parse_bundle(body: Any) -> tuple[str, list[Entry]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FhirError(
            400, "invalid", "POST to the base needs a Bundle", expression="resourceType"
        )
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError(
            422,
            "not-supported",
            "Bundle.type must be batch or transaction",
            expression="Bundle.type",
        )
    raw_entries = body.get("entry", [])
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
        raise FhirError(422, "too-costly", f"Bundle.entry must be a list of at most {MAX_ENTRIES}")
    entries = []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append(parse_entry(index, raw))
        except FhirError as error:
            if kind == "transaction":
                raise
            entries.append(Entry(index, "GET", "", None, [], None, None, None, None, error=error))
    return kind, entries


class BundleRunner:
    def __init__(
        self,
        eng: ops.Engine,
        caller: Caller,
        conn: asyncpg.Connection,
        base: str,
        minimal: bool,
        bundle_page: Callable[[ops.Page], Awaitable[dict[str, Any]]],
    ) -> None:
        self.eng, self.caller, self.conn, self.base = eng, caller, conn, base
        self.minimal = minimal
        self.bundle_page = bundle_page

    async def transaction(self, entries: list[Entry]) -> dict[str, Any]:
        results: dict[int, dict[str, Any]] = {}
        async with self.conn.transaction():
            mapping = await self._assign_ids(entries)
            resources = [e.resource for e in entries if isinstance(e.resource, dict)]
            resolved = await conditional.conditional_references(
                self.eng, self.caller, self.conn, resources
            )
            mapping.update(resolved)
            for entry in entries:
                if isinstance(entry.resource, dict):
                    ops.resolve_references(entry.resource, mapping)
            await self._run_ordered(entries, results)
            await self.caller.audit(
                self.conn, "transaction", "Bundle", detail=f"{len(entries)} entries"
            )
        return _response_bundle("transaction-response", [results[i] for i in range(len(entries))])

    async def _run_ordered(self, entries: list[Entry], results: dict[int, dict[str, Any]]) -> None:
        """FHIR's order (DELETE, POST, PUT, GET). Plain creates are checked in turn but stored
        together when the POSTs are done: one executemany and one audit append for all of them."""
        plain: list[Entry] = []
        for entry in sorted(entries, key=lambda e: METHOD_ORDER[e.method]):
            if entry.method != "POST" and plain:
                await self._create_plain(plain, results)
                plain = []
            if self._is_plain_create(entry):
                await self._indexed(entry, self._check_plain(entry))
                plain.append(entry)
            else:
                results[entry.index] = await self._run_indexed(entry)
        await self._create_plain(plain, results)

    def _is_plain_create(self, entry: Entry) -> bool:
        # A matched conditional create only audits; plugins run per entry (derive reads the
        # vitals stored so far), so both keep the one-entry-at-a-time path.
        return (
            entry.method == "POST"
            and entry.assigned is not None
            and entry.existing is None
            and not self.caller.plugins_wanted(entry.rtype)
        )

    async def _check_plain(self, entry: Entry) -> None:
        assert entry.assigned is not None
        await self.caller.authorize(entry.rtype, "create")
        ops.check_create(self.caller, entry.rtype, entry.resource, entry.assigned)

    async def _create_plain(self, plain: list[Entry], results: dict[int, dict[str, Any]]) -> None:
        if not plain:
            return
        items = [(e.rtype, e.assigned or "", e.resource) for e in plain]
        versions = await ops.create_many(self.eng, self.caller, self.conn, items)
        for entry, version in zip(plain, versions, strict=True):
            results[entry.index] = self.entry(version, 201)

    async def _assign_ids(self, entries: list[Entry]) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for entry in entries:
            if entry.method == "PUT" and entry.rid is None and entry.full_url:
                mapping[entry.full_url] = await self._match_update(entry)
            if entry.method != "POST":
                continue
            if entry.if_none_exist:
                await self.caller.authorize(entry.rtype, "create")
                entry.existing = await ops.find_existing(
                    self.eng, self.caller, self.conn, entry.rtype, entry.if_none_exist
                )
            target = entry.existing.id if entry.existing else new_id()
            entry.assigned = target
            if entry.full_url:
                mapping[entry.full_url] = f"{entry.rtype}/{target}"
        return mapping

    async def _match_update(self, entry: Entry) -> str:
        """A transaction's conditional update, matched before references are rewritten."""
        found = await self._indexed(entry, conditional.matches(
            self.eng, self.caller, self.conn, entry.rtype, entry.query, 2))  # fmt: skip
        if len(found) > 1:
            raise FhirError(412, "multiple-matches", f"Bundle.entry[{entry.index}]: the "
                            "conditional update's criteria match more than one resource")  # fmt: skip
        resource = entry.resource
        if found:
            entry.rid = found[0].id
            if resource.get("id", entry.rid) != entry.rid:
                raise _bad(entry.index, "the resource's id is not the matched resource's")
            entry.resource = {**resource, "id": entry.rid}
        elif "id" in resource:
            raise _bad(entry.index, "no match: this server assigns ids, leave out id")
        else:
            entry.rid = entry.assigned = new_id()
        return f"{entry.rtype}/{entry.rid}"

    async def _run_indexed(self, entry: Entry) -> dict[str, Any]:
        return await self._indexed(entry, self.run(entry))

    async def _indexed(self, entry: Entry, work: Awaitable[T]) -> T:
        """``work`` with its errors prefixed ``Bundle.entry[i]:``."""
        try:
            return await work
        except FhirError as error:
            error.issues = [
                {**i, "diagnostics": f"Bundle.entry[{entry.index}]: {i['diagnostics']}"}
                for i in error.issues
            ]
            raise

    async def batch(self, entries: list[Entry]) -> dict[str, Any]:
        results = []
        for entry in entries:
            if entry.error is not None:
                results.append(_error_entry(entry.error))
                continue
            try:
                async with self.conn.transaction():
                    results.append(await self.run(entry))
            except FhirError as error:
                results.append(_error_entry(error))
        malformed = sum(1 for e in entries if e.error is not None)
        if malformed:  # nothing was done for them, but the refusal is on the record
            await self.caller.audit(self.conn, "batch", "Bundle", outcome="failed",
                                    detail=f"{malformed} of {len(entries)} entries malformed")  # fmt: skip
        return _response_bundle("batch-response", results)

    async def run(self, entry: Entry) -> dict[str, Any]:
        eng, caller, conn = self.eng, self.caller, self.conn
        if entry.method == "POST":
            if entry.existing is not None:  # audited as the search and read it was
                return self.entry(entry.existing, 200)
            status, version = await ops.create(
                eng,
                caller,
                conn,
                entry.rtype,
                entry.resource,
                # a transaction already matched it up front
                None if entry.assigned else entry.if_none_exist,
                entry.assigned,
            )
            return self.entry(version, status)
        if entry.method == "PUT":
            if entry.rid is None:
                status, version = await conditional.update(
                    eng, caller, conn, entry.rtype, entry.query, entry.resource, entry.if_match
                )
            elif entry.assigned is not None:  # a transaction's conditional update: no match
                status, version = await ops.create(
                    eng, caller, conn, entry.rtype, entry.resource, None, entry.assigned
                )
            else:
                status, version = await ops.update(
                    eng, caller, conn, entry.rtype, entry.rid, entry.resource, entry.if_match
                )
            return self.entry(version, status)
        if entry.method == "PATCH":
            assert entry.rid is not None
            change = patch.from_resource(entry.rtype, entry.resource)
            status, version = await patch.apply(
                eng, caller, conn, entry.rtype, entry.rid, change, entry.if_match
            )
            return self.entry(version, status)
        if entry.method == "DELETE":
            if entry.rid is None:
                await conditional.delete(eng, caller, conn, entry.rtype, entry.query)
            else:
                await ops.delete(eng, caller, conn, entry.rtype, entry.rid, entry.if_match)
            return {"response": {"status": STATUS_TEXT[204]}}
        return await self.get(entry)

    async def get(self, entry: Entry) -> dict[str, Any]:
        if entry.operation is not None:
            resource = await bundle_ops.run(self.eng, self.caller, self.conn, self.base,
                                            entry.operation, entry.rid, entry.query)  # fmt: skip
            return {"resource": resource, "response": {"status": "200 OK"}}
        if entry.rid is None:
            page = await ops.run_search(self.eng, self.caller, self.conn, entry.rtype, entry.query)
            return {"resource": await self.bundle_page(page), "response": {"status": "200 OK"}}
        version = await ops.read(self.eng, self.caller, self.conn, entry.rtype, entry.rid)
        return self.entry(version, 200, include=True)

    def entry(self, version: Version, status: int, include: bool = False) -> dict[str, Any]:
        response = {
            "status": STATUS_TEXT.get(status, str(status)),
            "etag": version.etag,
            "lastModified": instant_text(version.last_updated),
            "location": f"{version.resource_type}/{version.id}/_history/{version.version}",
        }
        out: dict[str, Any] = {
            "fullUrl": f"{self.base}/{version.resource_type}/{version.id}",
            "response": response,
        }
        if (include or not self.minimal) and version.body is not None:
            out["resource"] = orjson.Fragment(version.body)
        return out


def _error_entry(error: FhirError) -> dict[str, Any]:
    return {"response": {"status": str(error.status), "outcome": outcome_body(error.issues)}}


def _response_bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if entries:
        bundle["entry"] = entries
    return bundle
