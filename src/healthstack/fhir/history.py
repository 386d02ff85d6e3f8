"""History interactions: an instance's, a type's and the system's versions, newest first.

Instance history pages by version number; type and system history by (last_updated, [type,] id,
version) behind a sealed cursor, so URLs carry no position a client could forge. All are confined
to the caller's compartment like reads, and answer with the total the Bundle carries. System
history covers the types the caller may read the history of (one audit record names them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, cast

import asyncpg
import orjson

from healthstack.core.outcome import FhirError
from healthstack.fhir import cursors
from healthstack.fhir import query as query_model
from healthstack.fhir.access import DENIAL_AUDITED, Caller, redact
from healthstack.fhir.extract import compartment_of
from healthstack.fhir.ops import TYPES, Engine
from healthstack.fhir.store import Version
from healthstack.numbers import INT4_MAX, ascii_int


async def history(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    rtype: str,
    rid: str,
    params: list[tuple[str, str]],
) -> tuple[list[Version], int | None, int]:
    """Newest first; the versions, the version to continue before (next page) and the total."""
    await caller.authorize(rtype, "history", resource_id=rid)
    count, since, before = _history_params(params)
    rows = await eng.store.history(
        conn, rtype, rid, caller.patient_for(rtype), since, before, count + 1
    )
    if not rows and before == 2**31 - 1:
        await eng.store.read(
            conn, rtype, rid, caller.patient_for(rtype)
        )  # 404 when absent or hidden
    total = await eng.store.history_count(conn, rtype, rid, caller.patient_for(rtype), since)
    await caller.audit(conn, "history", rtype, resource_id=rid, query=redact(rtype, params))
    more = len(rows) > count
    return visible(caller, rows[:count]), (rows[count - 1].version if more else None), total


def visible(caller: Caller, versions: list[Version]) -> list[Version]:
    """For a patient-context caller, only the versions that were in its patient's compartment
    when written: the store confines by the current version, and an Observation moved from
    patient A to B must not show B the version that was A's."""
    if caller.principal.patient is None:
        return versions
    return [v for v in versions if _was_theirs(caller, v)]


def _was_theirs(caller: Caller, version: Version) -> bool:
    patient = caller.patient_for(version.resource_type)
    if patient is None or version.body is None:  # an unconfined type; a tombstone holds nothing
        return True
    return patient in compartment_of(version.resource_type, version.id, orjson.loads(version.body))


def _history_params(params: list[tuple[str, str]]) -> tuple[int, dt.datetime, int]:
    count, since, before = (
        query_model.DEFAULT_COUNT,
        dt.datetime.min.replace(tzinfo=dt.UTC),
        2**31 - 1,
    )
    for name, value in params:
        if name == "_count" and (ascii_int(value) or 0) > 0:
            count = min(int(value), query_model.MAX_COUNT)
        elif name == "_since":
            since = query_model.parse_prefixed("_since", value)[1][0]
        elif name == "_before" and ascii_int(value, INT4_MAX) is not None:
            before = int(value)
        else:
            raise query_model.bad(
                name, "history supports _count, _since (and _before from next links)"
            )
    return count, since, before


FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.UTC)


async def type_history(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    rtype: str,
    params: list[tuple[str, str]],
) -> tuple[list[Version], str | None, int]:
    """Every version of every resource of a type, newest first; next page as a sealed cursor."""
    await caller.authorize(rtype, "history-type")
    count, since, position = _paging(eng, "history-type", rtype, params)
    before = cast(tuple[dt.datetime, str, int], position or (FAR_FUTURE, "", 0))
    rows = await eng.store.type_history(
        conn, rtype, caller.patient_for(rtype), since, before, count + 1
    )
    total = await eng.store.history_count(conn, rtype, None, caller.patient_for(rtype), since)
    await caller.audit(conn, "history-type", rtype, query=redact(rtype, params))
    following = _following(eng, "history-type", rtype, rows, count, since, lambda v: [v.id])
    return visible(caller, rows[:count]), following, total


async def system_history(
    eng: Engine, caller: Caller, conn: asyncpg.Connection, params: list[tuple[str, str]]
) -> tuple[list[Version], str | None, int]:
    """``GET /_history``: every version of every type the caller may see the history of."""
    types = [t for t in TYPES if caller.may(t, "history-type")]
    if not types:
        caller.marks[DENIAL_AUDITED] = True
        detail = "the access token's scopes permit history on no resource type"
        await caller.record_detached("history-system", "denied", detail=detail)
        raise FhirError(403, "forbidden", detail)
    count, since, position = _paging(eng, "history-system", "", params)
    before = cast(tuple[dt.datetime, str, str, int], position or (FAR_FUTURE, "", "", 0))
    confined = caller.patient if caller.principal.patient is not None else None
    unconfined = [t for t in types if caller.patient_for(t) is None]
    rows, total = await eng.store.system_history(
        conn, None if len(types) == len(TYPES) else types, confined, unconfined, since, before,
        count + 1,
    )  # fmt: skip
    seen = sorted({v.resource_type for v in rows[:count]})
    await caller.audit(conn, "history-system", None, query={**redact(None, params), "_type": seen})
    following = _following(eng, "history-system", "", rows, count, since,
                           lambda v: [v.resource_type, v.id])  # fmt: skip
    return visible(caller, rows[:count]), following, total


def _paging(
    eng: Engine, kind: str, owner: str, params: list[tuple[str, str]]
) -> tuple[int, dt.datetime, tuple[Any, ...] | None]:
    """``_count``, ``_since``, or a ``_cursor`` alone: (count, since, position to page before)."""
    count, since, position = query_model.DEFAULT_COUNT, dt.datetime.min.replace(tzinfo=dt.UTC), None
    for name, value in params:
        if name == "_count" and (ascii_int(value) or 0) > 0:
            count = min(int(value), query_model.MAX_COUNT)
        elif name == "_since":
            since = query_model.parse_prefixed("_since", value)[1][0]
        elif name == "_cursor" and len(params) == 1:
            count, since, position = _open_cursor(eng, kind, owner, value)
        else:
            raise query_model.bad(name, f"{kind.split('-')[1]} history supports _count and _since")
    return count, since, position


def _following(
    eng: Engine, kind: str, owner: str, rows: list[Version], count: int, since: dt.datetime,
    key: Callable[[Version], list[str]],
) -> str | None:  # fmt: skip
    """The sealed cursor of the next page (None when ``rows`` holds no more than ``count``)."""
    if len(rows) <= count:
        return None
    last = rows[count - 1]
    state = [count, since.isoformat(), last.last_updated.isoformat(), *key(last), last.version]
    return cursors.seal(eng.keyring, kind, owner, state)


def _open_cursor(
    eng: Engine, kind: str, owner: str, token: str
) -> tuple[int, dt.datetime, tuple[Any, ...]]:
    try:
        count, since, moment, *key, version = cursors.open_(eng.keyring, kind, owner, token)
        parse = dt.datetime.fromisoformat
        return int(count), parse(since), (parse(moment), *map(str, key), int(version))
    except (ValueError, TypeError):
        raise cursors.bad("invalid; repeat the request") from None
