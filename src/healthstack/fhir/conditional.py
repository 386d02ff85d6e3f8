"""Conditional update and delete (``PUT [type]?criteria``, ``DELETE [type]?criteria``) and
conditional references inside transactions (``Patient?identifier=...``).

Matching is a search: it needs the search permission, stays in the caller's compartment, is
audited as a search (criteria as digests), and runs under the same keyed advisory lock as a
conditional create, so two concurrent conditional writes with the same criteria serialize.
Outcomes follow R4 3.1.0.4.3 and 3.1.0.7.1: update with no match creates (the server assigns the
id), one match updates it, several are 412; delete removes up to ``_count`` matches (default 1,
at most :data:`MAX_DELETE`), more is 412, none is 204.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson

from healthstack.core.outcome import FhirError
from healthstack.fhir import ops
from healthstack.fhir.access import Caller, redact
from healthstack.fhir.store import Version
from healthstack.numbers import ascii_int

MAX_DELETE = 100


async def matches(
    eng: ops.Engine, caller: Caller, conn: asyncpg.Connection, rtype: str,
    params: list[tuple[str, str]], limit: int,
) -> list[Version]:  # fmt: skip
    if not params:
        raise FhirError(400, "invalid", "a conditional update or delete needs search parameters")
    await caller.authorize(rtype, "search")
    patient = caller.patient_for(rtype)
    query = await ops.parse_for(eng, caller, rtype, params)
    canonical = orjson.dumps([rtype, sorted(params)]).decode()
    for lock in eng.keyring.lock_ids(canonical):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
    query.count = limit
    found, _ = await ops.scan(eng, conn, query, patient, None)
    await caller.audit(conn, "search", rtype, query=redact(rtype, params),
                       detail="conditional update/delete")  # fmt: skip
    return found


async def update(
    eng: ops.Engine, caller: Caller, conn: asyncpg.Connection, rtype: str,
    params: list[tuple[str, str]], resource: Any, if_match: int | None,
) -> tuple[int, Version]:  # fmt: skip
    found = await matches(eng, caller, conn, rtype, params, 2)
    if len(found) > 1:
        raise FhirError(412, "multiple-matches", "the criteria match more than one resource")
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a FHIR resource)")
    if not found:
        if "id" in resource:
            raise FhirError(400, "invalid", "no match: this server assigns ids, leave out id",
                            expression="id")  # fmt: skip
        return await ops.create(eng, caller, conn, rtype, resource)
    target = found[0].id
    if resource.get("id", target) != target:
        raise FhirError(400, "invalid", "the body's id is not the matched resource's",
                        expression="id")  # fmt: skip
    return await ops.update(eng, caller, conn, rtype, target, {**resource, "id": target},
                            if_match)  # fmt: skip


async def delete(
    eng: ops.Engine, caller: Caller, conn: asyncpg.Connection, rtype: str,
    params: list[tuple[str, str]],
) -> int:  # fmt: skip
    """How many resources were deleted; more matches than allowed is a 412 (nothing deleted)."""
    allowed = 1
    criteria = []
    for name, value in params:
        if name == "_count":
            count = ascii_int(value)
            if count is None or not 1 <= count <= MAX_DELETE:
                raise FhirError(400, "invalid", f"_count: 1 to {MAX_DELETE} deletions",
                                expression="_count")  # fmt: skip
            allowed = count
        else:
            criteria.append((name, value))
    found = await matches(eng, caller, conn, rtype, criteria, allowed + 1)
    if len(found) > allowed:
        raise FhirError(412, "multiple-matches",
                        f"the criteria match more than {allowed} resource(s); raise _count")  # fmt: skip
    for version in found:
        await ops.delete(eng, caller, conn, rtype, version.id)
    return len(found)


CONDITIONAL_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")


async def conditional_references(
    eng: ops.Engine, caller: Caller, conn: asyncpg.Connection, resources: list[Any]
) -> dict[str, str]:
    """``Type?criteria`` references inside a transaction -> ``Type/id`` of their one match.

    Each distinct criteria is one search, authorized, confined and audited like any other; no
    match or several fail the whole transaction (412), as the spec asks."""
    mapping: dict[str, str] = {}
    for resource in resources:
        for ref in ops.walk_references(resource):
            match = CONDITIONAL_REFERENCE.match(ref["reference"])
            if match is None or ref["reference"] in mapping:
                continue
            rtype, criteria = match.groups()
            ops.check_type(rtype)
            mapping[ref["reference"]] = await _one_match(eng, caller, conn, rtype, criteria)
    return mapping


async def _one_match(
    eng: ops.Engine, caller: Caller, conn: asyncpg.Connection, rtype: str, criteria: str
) -> str:
    params = parse_qsl(criteria, keep_blank_values=True)
    await caller.authorize(rtype, "search")
    patient = caller.patient_for(rtype)
    query = await ops.parse_for(eng, caller, rtype, params)
    query.count = 2
    matches, _ = await ops.scan(eng, conn, query, patient, None)
    await caller.audit(conn, "search", rtype, query=redact(rtype, params),
                       detail="conditional reference")  # fmt: skip
    if len(matches) != 1:
        found = "no resource" if not matches else "more than one resource"
        raise FhirError(412, "not-found" if not matches else "multiple-matches",
                        f"a conditional reference to {rtype} matches {found}")  # fmt: skip
    return f"{rtype}/{matches[0].id}"
