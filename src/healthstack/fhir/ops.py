"""FHIR interactions on one connection, shared by the REST handlers and Bundle entries.

Each function authorizes, does its work, and audits on the same connection. Callers own the
transaction: writes run inside one (so the audit record commits or rolls back with the change).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson

from healthstack.core.crypto import Keyring
from healthstack.core.outcome import FhirError, issue
from healthstack.fhir import granular, includes, search
from healthstack.fhir import query as query_model
from healthstack.fhir import validate as validate_module
from healthstack.fhir.access import Caller, compartment_query, redact
from healthstack.fhir.store import Store, Version, new_id
from healthstack.fhir.validate import validate
from healthstack.security import authz

TYPES = validate_module.RESOURCE_TYPES  # every R4 type the definitions let a client store


@dataclass
class Engine:
    keyring: Keyring
    store: Store
    parser: search.Parser

    @classmethod
    def create(cls, keyring: Keyring) -> Engine:
        return cls(keyring, Store(keyring), search.Parser(keyring))


def check_type(rtype: str) -> None:
    if rtype in validate_module.REFUSED:
        reason = validate_module.REFUSED[rtype]
        raise FhirError(404, "not-supported", f"{rtype} is not stored here: {reason}")
    if rtype not in TYPES:
        raise FhirError(404, "not-supported", f"resource type {rtype[:64]!r} is not an R4 type")


def gone(v: Version) -> FhirError:
    return FhirError(
        410, "deleted", f"{v.resource_type}/{v.id} was deleted", headers={"ETag": v.etag}
    )


# -- reads ------------------------------------------------------------------------------------------
async def read(
    eng: Engine, caller: Caller, conn: asyncpg.Connection, rtype: str, rid: str
) -> Version:
    narrowed = await caller.authorize_narrowed(rtype, "read", resource_id=rid)
    version = await eng.store.read(conn, rtype, rid, caller.patient_for(rtype))
    if not granular.permits(rtype, version.body, narrowed):
        raise authz.hidden(rtype, rid)  # outside the granular scope: like a missing record
    await caller.audit(conn, "read", rtype, resource_id=rid, version=version.version,
                       query=compartment_query(version))  # fmt: skip
    if version.deleted:
        raise gone(version)
    return version


async def vread(
    eng: Engine, caller: Caller, conn: asyncpg.Connection, rtype: str, rid: str, vid: int
) -> Version:
    narrowed = await caller.authorize_narrowed(rtype, "vread", resource_id=rid, version=vid)
    version = await eng.store.vread(conn, rtype, rid, vid, caller.patient_for(rtype))
    if not granular.permits(rtype, version.body, narrowed):
        raise authz.hidden(rtype, rid)
    await caller.audit(conn, "vread", rtype, resource_id=rid, version=vid,
                       query=compartment_query(version))  # fmt: skip
    if version.deleted:
        raise gone(version)
    return version


@dataclass
class Page:
    versions: list[Version]
    query: query_model.Query
    start: list[Any] | None
    after: list[Any] | None  # position after the last entry when there is a next page
    total: int | None = None  # with _total=accurate or _summary=count
    included: list[Version] = dataclasses.field(default_factory=list)


async def parse_for(
    eng: Engine, caller: Caller, rtype: str, params: list[tuple[str, str]], lenient: bool = False
) -> query_model.Query:
    """Parse a search for ``caller`` (its permission on ``rtype`` already checked): confined as
    the caller's searches of each type are, and each type a chain or ``_has`` looks into needs
    search permission from a scope without a query (a granular scope's query cannot be applied
    inside the subquery, so it would answer questions about records the scope hides)."""
    query = eng.parser.parse(rtype, params, caller.patient_for, lenient)
    for inner in sorted(query.inner_types):
        await caller.authorize(inner, "search", detail="a chained or _has search parameter")
    return query


async def run_search(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    rtype: str,
    params: list[tuple[str, str]],
    lenient: bool = False,
) -> Page:
    narrowed = await caller.authorize_narrowed(rtype, "search")
    start = None
    if any(name == "_cursor" for name, _ in params):
        if len(params) != 1:
            raise query_model.bad("_cursor", "cannot be combined with other parameters")
        params, start = search.unseal(eng.keyring, rtype, params[0][1])
    patient = caller.patient_for(rtype)
    scoped, post_filter = granular.narrow(rtype, params, narrowed)
    query = await parse_for(eng, caller, rtype, scoped, lenient)
    if post_filter is not None:
        query.post_filters.append(post_filter)
    shape = query.shape
    await includes.authorize(caller, shape.includes, rtype)
    total = await _count(conn, query, patient) if shape.counts else None
    if shape.summary == "count":
        await caller.audit(conn, "search", rtype, query=redact(rtype, params))
        return Page([], query, start, None, total)
    versions, after = await scan(eng, conn, query, patient, start)
    await caller.audit(conn, "search", rtype, query=redact(rtype, params))
    extra = await includes.included(eng.store, caller, conn, shape.includes, versions)
    return Page(versions, query, start, after, total, extra)


async def _count(conn: asyncpg.Connection, query: query_model.Query, patient: str | None) -> int:
    if query.post_filters:
        raise query_model.bad("_total", "not available for searches decided after decryption")
    fresh = dataclasses.replace(query, args=list(query.args), where=list(query.where))
    value = await conn.fetchval(search.count_sql(fresh, patient), *fresh.args)
    return int(value)


async def scan(
    eng: Engine,
    conn: asyncpg.Connection,
    query: query_model.Query,
    patient: str | None,
    start: list[Any] | None,
) -> tuple[list[Version], list[Any] | None]:
    """Rows in keyset order; with post-filters (decrypt-then-decide) scan on until a page is full."""
    # Rows are kept with their versions: a keyset position is computed only where one is needed
    # (the next batch, the next page), not per row.
    found: list[tuple[Version, asyncpg.Record]] = []
    open_, rtype = eng.store.open, query.resource_type
    batch = query.count + 1 if not query.post_filters else max(4 * query.count, 100)
    position = start
    while True:
        rows = await _fetch(conn, query, patient, position, batch)
        opened = [(open_(rtype, row["id"], row), row) for row in rows]  # the page's hot loop
        found += opened if not query.post_filters else [p for p in opened if _passes(query, p[0])]
        if rows:
            position = search.sort_key(query, rows[-1])
        if len(found) > query.count or len(rows) < batch:
            break
    if len(found) > query.count:
        last = found[query.count - 1][1]
        return [v for v, _ in found[: query.count]], search.sort_key(query, last)
    return [v for v, _ in found], None


async def _fetch(
    conn: asyncpg.Connection,
    query: query_model.Query,
    patient: str | None,
    position: list[Any] | None,
    limit: int,
) -> list[asyncpg.Record]:
    fresh = dataclasses.replace(query, args=list(query.args), where=list(query.where))
    sql = search.build_sql(fresh, patient, position, limit)
    rows: list[asyncpg.Record] = await conn.fetch(sql, *fresh.args)
    return rows


def _passes(query: query_model.Query, version: Version) -> bool:
    if not query.post_filters or version.body is None:
        return True
    resource = orjson.loads(version.body)
    return all(check(resource) for check in query.post_filters)


# -- writes (call inside a transaction) --------------------------------------------------------------
def walk_references(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from walk_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_references(value)


def resolve_references(resource: dict[str, Any], mapping: dict[str, str]) -> None:
    """Rewrite Bundle-local ``urn:uuid:`` references; any left unresolved is a 400."""
    for ref in walk_references(resource):
        target = ref["reference"]
        if target in mapping:
            ref["reference"] = mapping[target]
        elif target.startswith("urn:"):
            raise FhirError(
                400,
                "invalid",
                "a urn:uuid reference does not resolve to an entry of this transaction Bundle",
            )


def _confine(caller: Caller, rtype: str, resource: dict[str, Any]) -> None:
    if not caller.in_compartment(rtype, resource):
        raise FhirError(403, "forbidden", f"the {rtype} is outside the token's patient compartment")


async def find_existing(
    eng: Engine, caller: Caller, conn: asyncpg.Connection, rtype: str, criteria: str
) -> Version | None:
    """Conditional-create match under advisory locks, so concurrent retries serialize here.

    Matching is a search and answering with the match is a read: each needs its own permission
    and is audited as what it is, so ``c`` alone never discloses a record (docs/security.md).
    """
    params = parse_qsl(criteria.split("?", 1)[-1], keep_blank_values=True)
    if not params:
        raise FhirError(400, "invalid", "If-None-Exist needs search parameters")
    await caller.authorize(rtype, "search")
    query = await parse_for(eng, caller, rtype, params)
    canonical = orjson.dumps([rtype, sorted(params)]).decode()
    for lock in eng.keyring.lock_ids(canonical):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
    query.count = 2
    matches, _ = await scan(eng, conn, query, caller.patient_for(rtype), None)
    detail = "conditional create (If-None-Exist)"
    await caller.audit(conn, "search", rtype, query=redact(rtype, params), detail=detail)
    if len(matches) > 1:
        raise FhirError(412, "duplicate", "If-None-Exist criteria match more than one resource")
    if not matches:
        return None
    match = matches[0]
    await caller.authorize(rtype, "read", resource_id=match.id)
    await caller.audit(
        conn, "read", rtype, resource_id=match.id, version=match.version, detail=detail
    )
    return match


async def create(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    rtype: str,
    resource: Any,
    if_none_exist: str | None = None,
    rid: str | None = None,
) -> tuple[int, Version]:
    await caller.authorize(rtype, "create")
    validate(resource, rtype)
    resolve_references(resource, {})
    if if_none_exist:
        existing = await find_existing(eng, caller, conn, rtype, if_none_exist)
        if existing is not None:  # audited by find_existing as the search and read it was
            return 200, existing
    rid = rid or new_id()
    _confine(caller, rtype, {**resource, "id": rid})
    await caller.before_store(conn, rtype, resource, rid)  # validate plugins
    version = await eng.store.create(conn, rtype, resource, rid)
    await caller.audit(conn, "create", rtype, resource_id=version.id, version=1)
    await caller.after_store(conn, eng.store, version)  # derive plugins
    return 201, version


async def validate_only(
    eng: Engine, caller: Caller, rtype: str, resource: Any
) -> list[dict[str, Any]]:
    """``$validate``: the OperationOutcome issues for ``resource``; nothing is stored.

    Needs the permission to create or update the type (it processes such a resource); audited
    as an operation without the resource's content."""
    interaction = "update" if caller.may(rtype, "update") else "create"
    await caller.authorize(rtype, interaction, detail="$validate")
    try:
        validate(resource, rtype)
    except FhirError as error:
        issues = error.issues
    else:
        issues = [issue("informational", "no problems found", severity="information")]
    await caller.record_detached("operation", "success", resource_type=rtype,
                                 detail=f"$validate: {len(issues)} issue(s)")  # fmt: skip
    return issues


def check_create(caller: Caller, rtype: str, resource: Any, rid: str) -> None:
    """What :func:`create` checks before storing a transaction entry under ``rid``: valid and in
    the caller's compartment. Authorization (:meth:`Caller.authorize`) is awaited first, and the
    Bundle has already resolved every reference (a ``urn:`` left over was a 400 there)."""
    validate(resource, rtype)
    _confine(caller, rtype, {**resource, "id": rid})


async def create_many(
    eng: Engine, caller: Caller, conn: asyncpg.Connection, items: list[tuple[str, str, Any]]
) -> list[Version]:
    """Plain creates ``(type, id, resource)``, each authorized and checked with
    :func:`check_create` already, when no validate/derive plugin runs for their types: the rows
    and audit records of one :func:`create` each, in two round trips (call inside a transaction)."""
    versions = await eng.store.create_many(conn, items)
    await caller.audit_creates(conn, [(v.resource_type, v.id) for v in versions])
    return versions


async def _locked_current(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    rtype: str,
    rid: str,
    if_match: int | None,
) -> asyncpg.Record:
    current = await eng.store.current(conn, rtype, rid)
    patient = caller.write_patient
    members = current["compartment"] or [current["patient_id"]] if current is not None else []
    if current is None or (patient is not None and patient not in members):
        raise FhirError(404, "not-found", f"{rtype}/{rid} not found")
    if if_match is not None and if_match != current["version"]:
        raise FhirError(
            412,
            "conflict",
            f'If-Match W/"{if_match}" is not the current version',
            headers={"ETag": f'W/"{current["version"]}"'},
        )
    return current


async def update(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    rtype: str,
    rid: str,
    resource: Any,
    if_match: int | None = None,
) -> tuple[int, Version]:
    await caller.authorize(rtype, "update", resource_id=rid)
    validate(resource, rtype)
    if resource.get("id") != rid:
        raise FhirError(400, "invalid", "the resource id must match the URL id", expression="id")
    resolve_references(resource, {})
    _confine(caller, rtype, resource)
    current = await _locked_current(eng, caller, conn, rtype, rid, if_match)
    stored = eng.store.open(rtype, rid, current)
    if _same_content(stored, resource):
        # A retried PUT (the mesh retries) must not mint a new version for the same content.
        await caller.audit(
            conn, "update", rtype, resource_id=rid, version=stored.version, detail="no change"
        )
        return 200, stored
    await caller.before_store(conn, rtype, resource, rid)  # validate plugins
    version = await eng.store.update(conn, rtype, rid, resource, current["version"] + 1)
    await caller.audit(conn, "update", rtype, resource_id=rid, version=version.version)
    await caller.after_store(conn, eng.store, version)  # derive plugins
    return 200, version


def _same_content(stored: Version, resource: dict[str, Any]) -> bool:
    if stored.deleted or stored.body is None:
        return False

    def strip(r: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in r.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
        return {**r, "meta": meta}

    return strip(orjson.loads(stored.body)) == strip(resource)


async def delete(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    rtype: str,
    rid: str,
    if_match: int | None = None,
) -> Version | None:
    """Soft delete: a tombstone version; deleting a deleted resource changes nothing."""
    await caller.authorize(rtype, "delete", resource_id=rid)
    current = await _locked_current(eng, caller, conn, rtype, rid, if_match)
    if current["deleted"]:
        await caller.audit(conn, "delete", rtype, resource_id=rid, detail="already deleted")
        return None
    version = await eng.store.delete(
        conn, rtype, rid, current["version"] + 1, current["patient_id"]
    )
    await caller.audit(conn, "delete", rtype, resource_id=rid, version=version.version)
    return version
