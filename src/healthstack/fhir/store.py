"""Versioned, encrypted resource storage: one SQL statement per write, one per read.

A write is a single data-modifying CTE: the current row, its history row, its blind-index tokens
and its vitals rows change together (and only when the version check in the first CTE passed).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from healthstack.core.crypto import Keyring, aad
from healthstack.core.dates import instant_text
from healthstack.core.outcome import FhirError
from healthstack.fhir import extract, index

_COLUMNS = (
    "patient_id, code, codes, categories, effective_start, effective_end, gender, key_id, body"
)
# The search index of every other parameter (``extract.rows_of``), one table per value kind: each
# argument is an array of the table's row type, so one statement writes them all.
GENERIC_TABLES = ("fhir_search_token", "fhir_search_string", "fhir_search_date",
                  "fhir_search_number", "fhir_search_reference")  # fmt: skip
_GENERIC_INSERTS = ",\n".join(
    f"g{n} AS (INSERT INTO {table} SELECT u.* FROM r, unnest(${22 + n}::{table}[]) AS u)"
    for n, table in enumerate(GENERIC_TABLES)
)
_SIDE_EFFECTS = f"""
h AS (INSERT INTO fhir_resource_version
        (resource_type, id, version, deleted, last_updated, key_id, body)
      SELECT $1, $2, $3, $4, $5, $13, $14 FROM r),
t AS (INSERT INTO fhir_token (resource_type, id, kind, digest)
      SELECT $1, $2, k, d FROM r, unnest($15::text[], $16::bytea[]) AS u(k, d)),
v AS (INSERT INTO fhir_vital (patient_id, code, effective, value, unit, observation_id)
      SELECT $6, c, e, x, n, $2 FROM r,
             unnest($17::text[], $18::timestamptz[], $19::float8[], $20::text[]) AS w(c, e, x, n)),
{_GENERIC_INSERTS}
SELECT count(*) FROM r
"""
_GENERIC_DELETES = "".join(
    f"x{n} AS (DELETE FROM {table} WHERE resource_type = $1 AND id = $2 "
    "AND EXISTS (SELECT 1 FROM r)),\n"
    for n, table in enumerate(GENERIC_TABLES)
)
INSERT_SQL = f"""
WITH r AS (INSERT INTO fhir_resource (resource_type, id, version, deleted, last_updated, {_COLUMNS},
                                      compartment)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $21)
           RETURNING id),
{_SIDE_EFFECTS}"""
UPDATE_SQL = f"""
WITH r AS (UPDATE fhir_resource SET version = $3, deleted = $4, last_updated = $5,
             patient_id = $6, code = $7, codes = $8, categories = $9, effective_start = $10,
             effective_end = $11, gender = $12, key_id = $13, body = $14,
             compartment = CASE WHEN $4 THEN compartment ELSE $21 END
           WHERE resource_type = $1 AND id = $2 AND version = $3 - 1
           RETURNING id),
{_GENERIC_DELETES}
dt AS (DELETE FROM fhir_token WHERE resource_type = $1 AND id = $2 AND EXISTS (SELECT 1 FROM r)),
dv AS (DELETE FROM fhir_vital WHERE observation_id = $2 AND $1 = 'Observation'
       AND EXISTS (SELECT 1 FROM r)),
{_SIDE_EFFECTS}"""
# Many new resources in one statement: each parameter is an array of one table's row type, so a
# row's nested arrays (codes, categories) need no flattening. Tuples are in table column order.
INSERT_MANY_SQL = (
    """
WITH r AS (INSERT INTO fhir_resource SELECT * FROM unnest($1::fhir_resource[])),
h AS (INSERT INTO fhir_resource_version SELECT * FROM unnest($2::fhir_resource_version[])),
t AS (INSERT INTO fhir_token SELECT * FROM unnest($3::fhir_token[])),
v AS (INSERT INTO fhir_vital SELECT * FROM unnest($4::fhir_vital[])),
"""
    + ",\n".join(
        f"g{n} AS (INSERT INTO {table} SELECT * FROM unnest(${5 + n}::{table}[]))"
        for n, table in enumerate(GENERIC_TABLES)
    )
    + "\nSELECT 1\n"
)
READ_SQL = """
SELECT version, deleted, last_updated, key_id, body, patient_id, compartment FROM fhir_resource
WHERE resource_type = $1 AND id = $2 AND ($3::text IS NULL OR patient_id = $3 OR compartment @> ARRAY[$3])
"""
VREAD_SQL = """
SELECT v.version, v.deleted, v.last_updated, v.key_id, v.body, r.patient_id, r.compartment
FROM fhir_resource_version v JOIN fhir_resource r USING (resource_type, id)
WHERE v.resource_type = $1 AND v.id = $2 AND v.version = $3
  AND ($4::text IS NULL OR r.patient_id = $4 OR r.compartment @> ARRAY[$4])
"""
HISTORY_SQL = """
SELECT v.version, v.deleted, v.last_updated, v.key_id, v.body, v.id
FROM fhir_resource_version v JOIN fhir_resource r USING (resource_type, id)
WHERE v.resource_type = $1 AND v.id = $2 AND ($3::text IS NULL OR r.patient_id = $3 OR r.compartment @> ARRAY[$3])
  AND v.last_updated >= $4 AND v.version < $5
ORDER BY v.version DESC LIMIT $6
"""
TYPE_HISTORY_SQL = """
SELECT v.version, v.deleted, v.last_updated, v.key_id, v.body, v.id
FROM fhir_resource_version v JOIN fhir_resource r USING (resource_type, id)
WHERE v.resource_type = $1 AND ($2::text IS NULL OR r.patient_id = $2 OR r.compartment @> ARRAY[$2])
  AND v.last_updated >= $3 AND (v.last_updated, v.id, v.version) < ($4, $5, $6)
ORDER BY v.last_updated DESC, v.id DESC, v.version DESC LIMIT $7
"""
# System history: $1 the types the caller may see (NULL: all), $2 the compartment and $3 the types
# it does not confine (types in no patient's compartment).
_SYSTEM_WHERE = """
FROM fhir_resource_version v JOIN fhir_resource r USING (resource_type, id)
WHERE ($1::text[] IS NULL OR v.resource_type = ANY($1::text[]))
  AND ($2::text IS NULL OR v.resource_type = ANY($3::text[]) OR r.patient_id = $2
       OR r.compartment @> ARRAY[$2])
  AND v.last_updated >= $4"""
SYSTEM_HISTORY_SQL = f"""
SELECT v.resource_type, v.version, v.deleted, v.last_updated, v.key_id, v.body, v.id
{_SYSTEM_WHERE} AND (v.last_updated, v.resource_type, v.id, v.version) < ($5, $6, $7, $8)
ORDER BY v.last_updated DESC, v.resource_type DESC, v.id DESC, v.version DESC LIMIT $9
"""
SYSTEM_HISTORY_COUNT_SQL = f"SELECT count(*) {_SYSTEM_WHERE}"
# History totals: the versions each history interaction pages through (its filters, no position).
# Two statements, not one with "$2 IS NULL OR v.id = $2": a generic plan of that could not use the
# primary key for an instance's count.
_COUNT_SQL = """
SELECT count(*) FROM fhir_resource_version v JOIN fhir_resource r USING (resource_type, id)
WHERE v.resource_type = $1 AND ($2::text IS NULL OR r.patient_id = $2 OR r.compartment @> ARRAY[$2])
  AND v.last_updated >= $3"""
TYPE_HISTORY_COUNT_SQL = _COUNT_SQL
HISTORY_COUNT_SQL = _COUNT_SQL + " AND v.id = $4"
CURRENT_SQL = """
SELECT version, deleted, patient_id, compartment, last_updated, key_id, body FROM fhir_resource
WHERE resource_type = $1 AND id = $2 FOR UPDATE
"""


@dataclass
class Version:
    """One stored version; ``body`` is the decrypted resource JSON (None when deleted)."""

    resource_type: str
    id: str
    version: int
    deleted: bool
    last_updated: dt.datetime
    body: bytes | None
    # The patients whose compartment holds it (reads and vreads only: their audit record names
    # them, so a break-glass read of an Observation is in its patient's accounting).
    patients: tuple[str, ...] = ()

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


def search_terms(rtype: str, rid: str, resource: dict[str, Any]) -> list[tuple[str, str]]:
    """Every blind-index ``(kind, value)`` of a resource: its type's dedicated terms and the
    identifying values of the generic index (what ``fhir_token`` holds, before keying)."""
    return [
        *index.extract(rtype, rid, resource).terms,
        *extract.rows_of(rtype, rid, resource).terms,
    ]


_NOT_SELECTED = object()


def _patients_of(rtype: str, row: asyncpg.Record) -> tuple[str, ...]:
    if rtype == "Patient":
        return ()  # a Patient's records already name it as resource_id
    compartment = row.get("compartment", _NOT_SELECTED)
    if compartment is _NOT_SELECTED:  # not a read or vread row (a search's: no exception per row)
        return ()
    found = list(compartment or ())
    if row["patient_id"] is not None and row["patient_id"] not in found:
        found.insert(0, row["patient_id"])
    return tuple(found)


def new_id() -> str:
    return str(uuid.uuid4())


class Store:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def open(self, rtype: str, rid: str, row: asyncpg.Record) -> Version:
        body = row["body"]
        if body is not None:
            body = self.keyring.decrypt(row["key_id"], body, aad(rtype, rid, row["version"]))
        return Version(rtype, rid, row["version"], row["deleted"], row["last_updated"], body,
                       _patients_of(rtype, row))  # fmt: skip

    async def read(
        self, conn: asyncpg.Connection, rtype: str, rid: str, patient: str | None
    ) -> Version:
        row = await conn.fetchrow(READ_SQL, rtype, rid, patient)
        if row is None:
            raise FhirError(404, "not-found", f"{rtype}/{rid} not found")
        return self.open(rtype, rid, row)

    async def vread(
        self, conn: asyncpg.Connection, rtype: str, rid: str, version: int, patient: str | None
    ) -> Version:
        row = await conn.fetchrow(VREAD_SQL, rtype, rid, version, patient)
        if row is None:
            raise FhirError(404, "not-found", f"{rtype}/{rid}/_history/{version} not found")
        return self.open(rtype, rid, row)

    async def history(
        self,
        conn: asyncpg.Connection,
        rtype: str,
        rid: str,
        patient: str | None,
        since: dt.datetime,
        before_version: int,
        limit: int,
    ) -> list[Version]:
        rows = await conn.fetch(HISTORY_SQL, rtype, rid, patient, since, before_version, limit)
        return [self.open(rtype, rid, row) for row in rows]

    async def type_history(
        self,
        conn: asyncpg.Connection,
        rtype: str,
        patient: str | None,
        since: dt.datetime,
        before: tuple[dt.datetime, str, int],
        limit: int,
    ) -> list[Version]:
        rows = await conn.fetch(TYPE_HISTORY_SQL, rtype, patient, since, *before, limit)
        return [self.open(rtype, row["id"], row) for row in rows]

    async def history_count(
        self, conn: asyncpg.Connection, rtype: str, rid: str | None, patient: str | None,
        since: dt.datetime,
    ) -> int:  # fmt: skip
        """How many versions an instance (``rid``) or type history holds since ``since``."""
        if rid is None:
            return int(await conn.fetchval(TYPE_HISTORY_COUNT_SQL, rtype, patient, since))
        return int(await conn.fetchval(HISTORY_COUNT_SQL, rtype, patient, since, rid))

    async def system_history(
        self, conn: asyncpg.Connection, types: list[str] | None, patient: str | None,
        unconfined: list[str], since: dt.datetime, before: tuple[dt.datetime, str, str, int],
        limit: int,
    ) -> tuple[list[Version], int]:  # fmt: skip
        """Versions of every type in ``types`` (None: all), newest first, and their total."""
        args = (types, patient, unconfined, since)
        rows = await conn.fetch(SYSTEM_HISTORY_SQL, *args, *before, limit)
        total = await conn.fetchval(SYSTEM_HISTORY_COUNT_SQL, *args)
        return [self.open(row["resource_type"], row["id"], row) for row in rows], int(total)

    async def create(
        self, conn: asyncpg.Connection, rtype: str, resource: dict[str, Any], rid: str | None = None
    ) -> Version:
        rid = rid or new_id()
        return await self._write(conn, INSERT_SQL, rtype, rid, 1, resource)

    async def create_many(
        self, conn: asyncpg.Connection, items: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> list[Version]:
        """Insert new resources ``(type, id, resource)``: the rows :meth:`create` writes for each
        (same arguments), in one statement (:data:`INSERT_MANY_SQL`, one round trip)."""
        tables: tuple[list[tuple[Any, ...]], ...] = tuple(
            [] for _ in range(4 + len(GENERIC_TABLES))
        )
        versions = []
        for rtype, rid, resource in items:
            now = dt.datetime.now(dt.UTC)
            args, plaintext = self._arguments(rtype, rid, 1, now, resource)
            _split_rows(args, tables)
            versions.append(Version(rtype, rid, 1, False, now, plaintext))
        # An INSERT either writes its rows or raises (unique violation): no count to check.
        await conn.execute(INSERT_MANY_SQL, *tables)
        return versions

    async def update(
        self, conn: asyncpg.Connection, rtype: str, rid: str, resource: dict[str, Any], version: int
    ) -> Version:
        """Write ``version``; the current row must be at ``version - 1`` (else 409)."""
        return await self._write(conn, UPDATE_SQL, rtype, rid, version, resource)

    async def delete(
        self, conn: asyncpg.Connection, rtype: str, rid: str, version: int, patient_id: str | None
    ) -> Version:
        """A tombstone version: no body, no tokens, no vitals; the compartment is kept (410)."""
        return await self._write(conn, UPDATE_SQL, rtype, rid, version, None, patient_id)

    async def current(
        self, conn: asyncpg.Connection, rtype: str, rid: str
    ) -> asyncpg.Record | None:
        """The current version row, locked for this transaction (update/delete without If-Match)."""
        return await conn.fetchrow(CURRENT_SQL, rtype, rid)

    async def _write(
        self,
        conn: asyncpg.Connection,
        sql: str,
        rtype: str,
        rid: str,
        version: int,
        resource: dict[str, Any] | None,
        patient_id: str | None = None,
    ) -> Version:
        now = dt.datetime.now(dt.UTC)
        if resource is None:
            args, plaintext = self._tombstone(rtype, rid, version, now, patient_id), None
        else:
            args, plaintext = self._arguments(rtype, rid, version, now, resource)
        if await conn.fetchval(sql, *args) != 1:
            raise FhirError(409, "conflict", f"{rtype}/{rid} changed concurrently; retry")
        return Version(rtype, rid, version, resource is None, now, plaintext)

    def _tombstone(
        self, rtype: str, rid: str, version: int, now: dt.datetime, patient_id: str | None
    ) -> list[Any]:
        return [
            rtype,
            rid,
            version,
            True,
            now,
            patient_id,
            *([None] * 6),
            self.keyring.active.key_id,
            None,
            [],
            [],
            [],
            [],
            [],
            [],
            None,  # compartment: kept as it was (a tombstone stays where its resource was)
            *([[]] * len(GENERIC_TABLES)),
        ]

    def _arguments(
        self, rtype: str, rid: str, version: int, now: dt.datetime, resource: dict[str, Any]
    ) -> tuple[list[Any], bytes]:
        meta = {
            k: v
            for k, v in resource.get("meta", {}).items()
            if k not in ("versionId", "lastUpdated")
        }
        resource = {
            **resource,
            "id": rid,
            "meta": {**meta, "versionId": str(version), "lastUpdated": instant_text(now)},
        }
        ext = index.extract(rtype, rid, resource)
        rows = extract.rows_of(rtype, rid, resource)
        ext.terms += rows.terms
        if ext.patient_id is None and rows.compartment:
            ext.patient_id = rows.compartment[0]
        plaintext = orjson.dumps(resource)
        key_id, blob = self.keyring.encrypt(plaintext, aad(rtype, rid, version))
        active = self.keyring.active
        digests = [active.digest(kind, value) for kind, value in ext.terms]
        vitals = ext.vitals
        args = [
            rtype,
            rid,
            version,
            False,
            now,
            ext.patient_id,
            ext.code,
            ext.codes,
            ext.categories,
            ext.effective_start,
            ext.effective_end,
            ext.gender,
            key_id,
            blob,
            [k for k, _ in ext.terms],
            digests,
            [v.code for v in vitals],
            [v.effective for v in vitals],
            [v.value for v in vitals],
            [v.unit for v in vitals],
            rows.compartment or None,
            [(rtype, rid, *row) for row in rows.tokens],
            [(rtype, rid, *row) for row in rows.strings],
            [(rtype, rid, *row) for row in rows.dates],
            [(rtype, rid, *row) for row in rows.numbers],
            [(rtype, rid, *row) for row in rows.references],
        ]
        return args, plaintext


def _split_rows(args: list[Any], tables: tuple[list[tuple[Any, ...]], ...]) -> None:
    """INSERT_SQL's arguments as rows of its tables (what its CTEs insert)."""
    resources, versions, tokens, vitals, *generic = tables
    rtype, rid, version, deleted, now, patient_id = args[:6]
    resources.append((*args[:14], args[20]))
    for table, rows in zip(generic, args[21:], strict=True):
        table.extend(rows)
    versions.append((rtype, rid, version, deleted, now, args[12], args[13]))
    tokens.extend(
        (rtype, rid, kind, digest) for kind, digest in zip(args[14], args[15], strict=True)
    )
    vitals.extend(
        (patient_id, code, effective, value, unit, rid)
        for code, effective, value, unit in zip(*args[16:20], strict=True)
    )
