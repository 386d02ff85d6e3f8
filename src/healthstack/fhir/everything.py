"""``Patient/[id]/$everything``: the patient's compartment, page by page, plus what it references.

Every resource the CompartmentDefinition places with the patient (``fhir_resource.compartment``),
optionally limited by ``_type`` and ``_since``, in a stable order (type, id) with sealed
cursors; each page also carries the resources outside every compartment that the page's entries
reference (Practitioner, Organization, Medication...). Types the caller may not search are left
out; each returned resource is audited as a read, the operation itself as an ``operation``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from healthstack.core.crypto import Keyring
from healthstack.core.outcome import FhirError
from healthstack.fhir import cursors, searchdefs
from healthstack.fhir.access import Caller
from healthstack.fhir.store import Store, Version
from healthstack.numbers import ascii_int

DEFAULT_COUNT, MAX_COUNT = 100, 500
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
PAGE_SQL = """
SELECT resource_type, id, version, deleted, last_updated, key_id, body FROM fhir_resource
WHERE compartment @> ARRAY[$1]::text[] AND NOT deleted AND resource_type = ANY($2::text[])
  AND last_updated >= $3 AND (resource_type, id) > ($4, $5)
ORDER BY resource_type, id LIMIT $6
"""
REFERENCED_SQL = """
SELECT DISTINCT target_type, target FROM fhir_search_reference
WHERE (resource_type, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
  AND target_type = ANY($3::text[])
"""
READ_SQL = """
SELECT resource_type, id, version, deleted, last_updated, key_id, body FROM fhir_resource
WHERE resource_type = $1 AND id = ANY($2::text[]) AND NOT deleted
"""


def bad(param: str, message: str) -> FhirError:
    return FhirError(400, "invalid", f"$everything parameter {param}: {message}")


@dataclass
class Request:
    patient: str
    types: list[str]
    since: dt.datetime = EARLIEST
    count: int = DEFAULT_COUNT
    after: tuple[str, str] = ("", "")
    params: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Result:
    matches: list[Version]
    referenced: list[Version]
    next_cursor: str | None


def parse(keyring: Keyring, patient: str, params: list[tuple[str, str]]) -> Request:
    if len(params) == 1 and params[0][0] == "_cursor":
        return _unseal(keyring, patient, params[0][1])
    request = Request(patient, sorted(t for t in searchdefs.resource_types()
                                      if searchdefs.in_some_compartment(t)), params=params)  # fmt: skip
    for name, value in params:
        if name == "_type":
            wanted = value.split(",")
            unknown = [t for t in wanted if t not in searchdefs.resource_types()]
            if unknown:
                raise bad("_type", f"unknown resource type {unknown[0][:64]!r}")
            request.types = sorted(set(wanted) & set(request.types))
        elif name == "_since":
            from healthstack.core.dates import interval

            try:
                request.since = interval(value)[0]
            except ValueError:
                raise bad("_since", "expected a FHIR instant") from None
        elif name == "_count":
            count = ascii_int(value)
            if count is None or count < 1:
                raise bad("_count", "must be a positive integer")
            request.count = min(count, MAX_COUNT)
        else:
            raise bad(name[:64], "supported: _type, _since, _count")
    return request


async def everything(
    store: Store, caller: Caller, conn: asyncpg.Connection, request: Request
) -> Result:
    await caller.authorize("Patient", "read", resource_id=request.patient)
    await store.read(conn, "Patient", request.patient, caller.patient_for("Patient"))  # 404
    types = [t for t in request.types if caller.may(t, "search")]
    rows = await conn.fetch(PAGE_SQL, request.patient, types, request.since, *request.after,
                            request.count + 1)  # fmt: skip
    matches = [store.open(r["resource_type"], r["id"], r) for r in rows[: request.count]]
    referenced = await _referenced(store, caller, conn, matches)
    await caller.audit(conn, "operation", "Patient", resource_id=request.patient,
                       detail=f"$everything: {len(matches)} + {len(referenced)} resources")  # fmt: skip
    read = [(v.resource_type, v.id) for v in (*matches, *referenced)]
    if read:
        await caller.audit_reads(conn, read, "$everything")
    cursor = None
    if len(rows) > request.count:
        last = matches[-1]
        cursor = _seal(store.keyring, request, (last.resource_type, last.id))
    return Result(matches, referenced, cursor)


async def _referenced(
    store: Store, caller: Caller, conn: asyncpg.Connection, matches: list[Version]
) -> list[Version]:
    shared = sorted(t for t in searchdefs.resource_types()
                    if not searchdefs.in_some_compartment(t) and caller.may(t, "read"))  # fmt: skip
    if not matches or not shared:
        return []
    rows = await conn.fetch(REFERENCED_SQL, [v.resource_type for v in matches],
                            [v.id for v in matches], shared)  # fmt: skip
    by_type: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_type[row[0]].append(row[1])
    out: list[Version] = []
    for rtype, ids in by_type.items():
        out += [store.open(rtype, r["id"], r) for r in await conn.fetch(READ_SQL, rtype, ids)]
    return out


def _seal(keyring: Keyring, request: Request, after: tuple[str, str]) -> str:
    state = [request.types, request.since.isoformat(), request.count, list(after)]
    return cursors.seal(keyring, "everything", request.patient, state)


def _unseal(keyring: Keyring, patient: str, token: str) -> Request:
    try:
        types, since, count, after = cursors.open_(keyring, "everything", patient, token)
        return Request(patient, list(types), dt.datetime.fromisoformat(since), int(count),
                       (str(after[0]), str(after[1])))  # fmt: skip
    except (ValueError, TypeError, IndexError):
        raise cursors.bad("invalid; repeat the request") from None


def bundle(base: str, result: Result, self_url: str, entry: Any) -> dict[str, Any]:
    links = [{"relation": "self", "url": self_url}]
    if result.next_cursor:
        links.append({"relation": "next", "url": f"{self_url.split('?')[0]}?_cursor="
                                                 f"{result.next_cursor}"})  # fmt: skip
    entries = [entry(base, v, {"mode": "match"}) for v in result.matches]
    entries += [entry(base, v, {"mode": "include"}) for v in result.referenced]
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if entries:
        out["entry"] = entries
    return out
