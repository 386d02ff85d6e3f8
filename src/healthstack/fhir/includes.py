"""``_include`` and ``_revinclude`` (``:iterate`` one more level), following indexed references.

Included resources are read under the caller's compartment (never another patient's), need the
caller's read permission on their type (403 otherwise, before anything is read), are capped at
:data:`shaping.MAX_INCLUDED` per page, and are audited as reads.
"""

from __future__ import annotations

from collections import defaultdict

import asyncpg

from healthstack.fhir import searchdefs
from healthstack.fhir.access import Caller
from healthstack.fhir.shaping import MAX_INCLUDED, Include
from healthstack.fhir.store import Store, Version

FORWARD_SQL = """
SELECT DISTINCT target_type, target FROM fhir_search_reference
WHERE resource_type = $1 AND id = ANY($2::text[]) AND ($3 = '*' OR param = $3)
  AND target_type IS NOT NULL AND ($4::text IS NULL OR target_type = $4)
LIMIT $5
"""
REVERSE_SQL = """
SELECT DISTINCT resource_type, id FROM fhir_search_reference
WHERE resource_type = $1 AND ($2 = '*' OR param = $2) AND target_type = $3
  AND target = ANY($4::text[])
LIMIT $5
"""
READ_MANY_SQL = """
SELECT resource_type, id, version, deleted, last_updated, key_id, body FROM fhir_resource
WHERE resource_type = $1 AND id = ANY($2::text[]) AND NOT deleted
  AND ($3::text IS NULL OR patient_id = $3 OR compartment @> ARRAY[$3])
"""


async def authorize(caller: Caller, includes: list[Include], rtype: str) -> None:
    """403 before any work for an include of a type the caller may not read."""
    for include in includes:
        if include.param == "*" and not include.reverse:
            continue  # a wildcard leaves out the types the caller may not read
        for target in _possible_types(include, rtype):
            await caller.authorize(target, "read")


def _possible_types(include: Include, rtype: str) -> list[str]:
    if include.reverse:
        return [include.source]
    if include.target:
        return [include.target]
    if include.param == "*":
        return sorted({t for p in searchdefs.params_of(include.source).values()
                       if p.type == "reference" for t in p.targets})  # fmt: skip
    return list(searchdefs.params_of(include.source)[include.param].targets)


async def included(
    store: Store, caller: Caller, conn: asyncpg.Connection, includes: list[Include],
    matches: list[Version],
) -> list[Version]:  # fmt: skip
    if not includes:
        return []  # the common search: no set of its matches to build
    seen = {(v.resource_type, v.id) for v in matches}
    found: list[Version] = []
    frontier = matches
    for level in (0, 1):
        wanted = [i for i in includes if level == 0 or i.iterate]
        if not wanted or not frontier:
            break
        pairs: list[tuple[str, str]] = []
        for include in wanted:
            pairs += await _references(conn, include, frontier)
        fresh = [p for p in dict.fromkeys(pairs) if p not in seen][: MAX_INCLUDED - len(found)]
        seen.update(fresh)
        frontier = await _read_many(store, caller, conn, fresh)
        found += frontier
    if found:
        await caller.audit_reads(conn, [(v.resource_type, v.id) for v in found], "included")
    return found


async def _references(
    conn: asyncpg.Connection, include: Include, frontier: list[Version]
) -> list[tuple[str, str]]:
    by_type: dict[str, list[str]] = defaultdict(list)
    for version in frontier:
        by_type[version.resource_type].append(version.id)
    rows: list[asyncpg.Record] = []
    if include.reverse:
        for rtype, ids in by_type.items():
            rows += await conn.fetch(REVERSE_SQL, include.source, include.param, rtype, ids,
                                     MAX_INCLUDED)  # fmt: skip
    elif include.source in by_type:
        rows = await conn.fetch(FORWARD_SQL, include.source, by_type[include.source],
                                include.param, include.target, MAX_INCLUDED)  # fmt: skip
    return [(row[0], row[1]) for row in rows]


async def _read_many(
    store: Store, caller: Caller, conn: asyncpg.Connection, pairs: list[tuple[str, str]]
) -> list[Version]:
    by_type: dict[str, list[str]] = defaultdict(list)
    for rtype, rid in pairs:
        by_type[rtype].append(rid)
    out: list[Version] = []
    for rtype, ids in by_type.items():
        if not caller.may(rtype, "read"):
            continue  # a wildcard reached a type the caller may not read: left out
        rows = await conn.fetch(READ_MANY_SQL, rtype, ids, caller.patient_for(rtype))
        out += [store.open(rtype, row["id"], row) for row in rows]
    return out
