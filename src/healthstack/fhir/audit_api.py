"""``GET /api/fhir/AuditEvent``: the audit trail as FHIR R4 AuditEvent resources, auditors only.

Search parameters: ``date`` (with ``eq/ge/gt/le/lt`` prefixes), ``agent`` (subject or client id),
``entity`` (``Type/id`` or an id), ``outcome`` (FHIR codes 0, 4, 8), ``_count`` (<= 500). Newest
first. Reading the trail needs a scope naming AuditEvent (``user/AuditEvent.rs``); the reading is
itself audited. ``GET /AuditEvent/{chain}-{seq}`` reads one record.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from healthstack.core.crypto import Keyring
from healthstack.core.dates import instant_text, interval
from healthstack.core.outcome import FhirError, FhirResponse
from healthstack.numbers import INT4_MAX, ascii_int
from healthstack.security import audit, authz
from healthstack.security.middleware import principal_of
from healthstack.service.db import DATABASE_ERRORS, ClientDataError, unavailable
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.audit")
MAX_COUNT = 500
MAX_VALUE = 256
OUTCOMES = {"success": "0", "denied": "4", "unauthenticated": "4", "failed": "4", "error": "8"}
ACTIONS = {"create": "C", "read": "R", "vread": "R", "history": "R", "update": "U",
           "delete": "D", "search": "E", "operation": "E", "history-type": "E",
           "history-system": "E"}  # fmt: skip
_PREFIXES = {"eq", "ge", "gt", "le", "lt"}
PARAMS = frozenset({"date", "agent", "entity", "outcome", "_count", "_cursor"})
# A reason re-sealed by `keys rotate` (audit_reason) wins over the chained ciphertext, whose key
# may have been retired.
_RESEALED = "(SELECT {col} FROM audit_reason r WHERE r.chain_id = audit_log.chain_id AND r.seq = audit_log.seq)"
SELECT = (
    "SELECT chain_id, seq, content, recorded_at, "
    f"{_RESEALED.format(col='r.key_id')} AS resealed_key, "
    f"{_RESEALED.format(col='r.ciphertext')} AS resealed FROM audit_log"
)


def _date_clause(value: str, arg: Callable[[Any], str]) -> str:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    text = value[2:] if value[:2] in _PREFIXES else value
    try:
        start, end = interval(text)
    except ValueError:
        raise FhirError(400, "invalid", "date: not a FHIR date or dateTime",
                        expression="date") from None  # fmt: skip
    if prefix == "eq":
        return f"recorded_at >= {arg(start)} AND recorded_at < {arg(end)}"
    # The value's implicit precision is [start, end): ge/lt compare with start, gt/le with end.
    operator, bound = {"ge": (">=", start), "lt": ("<", start), "gt": (">=", end),
                       "le": ("<", end)}[prefix]  # fmt: skip
    return f"recorded_at {operator} {arg(bound)}"


def _entity_clause(value: str, arg: Callable[[Any], str]) -> str:
    rtype, _, rid = value.rpartition("/")
    if rtype:
        return f"resource_type = {arg(rtype)} AND resource_id = {arg(rid)}"
    return f"resource_id = {arg(rid)}"


def _outcome_clause(value: str, arg: Callable[[Any], str]) -> str:
    names = [name for name, code in OUTCOMES.items() if value in (code, name)]
    if not names:
        raise FhirError(400, "invalid", "outcome: expected 0, 4 or 8", expression="outcome")
    return f"outcome = ANY({arg(names)}::text[])"


def _clauses(request: Request) -> tuple[list[str], list[Any], int]:
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where: list[str] = []
    count = 50
    for name, value in request.query_params.multi_items():
        if name not in PARAMS:
            raise FhirError(400, "not-supported", f"unknown search parameter {name[:64]!r}")
        if "\x00" in value or len(value) > MAX_VALUE:
            raise FhirError(400, "invalid", f"{name}: invalid value", expression=name)
        if name == "date":
            where.append(_date_clause(value, arg))
        elif name == "agent":
            where.append(f"(subject = {arg(value)} OR client_id = {arg(value)})")
        elif name == "entity":
            where.append(_entity_clause(value, arg))
        elif name == "outcome":
            where.append(_outcome_clause(value, arg))
        elif name == "_count":
            count = _count(value)
        else:
            where.append(_cursor_clause(value, arg))
    return where, args, count


def _count(value: str) -> int:
    count = ascii_int(value)
    if count is None:
        raise FhirError(400, "invalid", "_count: expected a number", expression="_count")
    return max(1, min(count, MAX_COUNT))


def _cursor(row: asyncpg.Record) -> str:
    raw = f"{row['recorded_at'].isoformat()}|{row['chain_id']}|{row['seq']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _cursor_clause(value: str, arg: Callable[[Any], str]) -> str:
    try:
        when, chain, seq = base64.urlsafe_b64decode(value).decode().split("|")
        key = (dt.datetime.fromisoformat(when), int(chain), int(seq))
    except (ValueError, UnicodeDecodeError):
        raise FhirError(400, "invalid", "_cursor: malformed", expression="_cursor") from None
    return (f"(recorded_at, chain_id, seq) < ({arg(key[0])}::timestamptz, "
            f"{arg(key[1])}::smallint, {arg(key[2])}::bigint)")  # fmt: skip


def to_fhir(
    chain_id: int, seq: int, content: str, keyring: Keyring | None = None,
    resealed: tuple[str, bytes] | None = None,
) -> dict[str, Any]:  # fmt: skip
    doc = orjson.loads(content)
    if keyring is not None and doc.get("break_glass_reason"):
        doc["break_glass_reason"] = audit.open_reason(
            keyring, doc["break_glass_reason"], resealed, chain_id, seq
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"{chain_id}-{seq}",
        "type": _type(doc["interaction"]),
        "recorded": instant_text(dt.datetime.fromisoformat(doc["time"])),
        "outcome": OUTCOMES.get(doc["outcome"], "8"),
        "agent": [_agent(doc)],
        "source": {"observer": {"display": "healthstack"}},
    }
    if doc["interaction"] == "disclosure":
        event["action"] = "R"  # PHI read out and sent on (DICOM 110106 Export, IHE BALP)
    elif doc["interaction"] in ACTIONS:
        event["action"] = ACTIONS[doc["interaction"]]
        event["subtype"] = [{"system": "http://hl7.org/fhir/restful-interaction",
                             "code": doc["interaction"]}]  # fmt: skip
    if doc.get("detail"):
        event["outcomeDesc"] = doc["detail"]
    entity = _entity(doc)
    if entity:
        event["entity"] = [entity]
    return event


def _type(interaction: str) -> dict[str, str]:
    if interaction == "disclosure":  # Bulk export, AI summary: the 164.528 accounting reads these
        return {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106",
                "display": "Export"}  # fmt: skip
    if interaction in ("login", "break-glass"):
        return {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114",
                "display": "User Authentication"}  # fmt: skip
    return {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
            "display": "RESTful Operation"}  # fmt: skip


def _agent(doc: dict[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = {"requestor": True,
                             "who": {"identifier": {"value": doc.get("subject", "anonymous")}}}  # fmt: skip
    if doc.get("client_id"):
        agent["altId"] = doc["client_id"]
    if doc.get("source_ip"):
        agent["network"] = {"address": doc["source_ip"], "type": "2"}
    if doc.get("break_glass_reason"):
        agent["purposeOfUse"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT",
            "display": "Emergency Treatment"}], "text": doc["break_glass_reason"]}]  # fmt: skip
    return agent


def _entity(doc: dict[str, Any]) -> dict[str, Any] | None:
    details = [{"type": key, "valueString": str(doc[key])}
               for key in ("request_id", "trace_id", "break_glass_reason") if doc.get(key)]  # fmt: skip
    if doc.get("query"):
        details.append({"type": "query", "valueString": orjson.dumps(doc["query"]).decode()})
    entity: dict[str, Any] = {}
    if doc.get("resource_type"):
        ref = doc["resource_type"] + (f"/{doc['resource_id']}" if doc.get("resource_id") else "")
        ref += f"/_history/{doc['version']}" if doc.get("version") else ""
        entity["what"] = {"reference": ref}
    if details:
        entity["detail"] = details
    return entity or None


def routes(state: ServiceState) -> list[Route]:
    async def search(request: Request) -> Response:
        return await _guarded(_search, state, request)

    async def read(request: Request) -> Response:
        return await _guarded(_read, state, request)

    return [Route("/AuditEvent", search, methods=["GET"]),
            Route("/AuditEvent/{id}", read, methods=["GET"])]  # fmt: skip


async def _guarded(handler: Callable[[ServiceState, Request], Awaitable[Response]],
                   state: ServiceState, request: Request) -> Response:  # fmt: skip
    try:
        return await handler(state, request)
    except FhirError as error:
        return error.response()
    except (asyncpg.DataError, asyncpg.ProgramLimitExceededError, ClientDataError) as error:
        # A value the database (or asyncpg, encoding it) cannot take: out of range, wrong encoding.
        # The client's fault, not worth retrying, so not a 503 (issue 12 item 11); asyncpg's own
        # DataError is an InterfaceError, hence before the outage branch.
        log.warning("audit search value refused", extra={"error": type(error).__name__})
        return FhirError(400, "invalid", "a search value is out of range").response()
    except DATABASE_ERRORS as error:
        # One definition of an outage for the whole service (service.db.unavailable).
        if unavailable(error):
            log.error("database unavailable", extra={"error": type(error).__name__})
            return FhirError(503, "transient", "database unavailable; retry").response()
        log.error("database error", extra={"error": type(error).__name__})
        return FhirError(500, "exception", "internal database error").response()


async def _authorize(state: ServiceState, request: Request, interaction: str) -> None:
    principal = principal_of(request)
    try:
        authz.require(principal, authz.AUDIT_TYPE, interaction)
    except FhirError as denial:
        await audit.record_detached(state, audit.event_for(
            principal, interaction, "denied", resource_type=authz.AUDIT_TYPE, detail=str(denial)))  # fmt: skip
        raise


async def _search(state: ServiceState, request: Request) -> Response:
    await _authorize(state, request, "search")
    where, args, count = _clauses(request)
    sql = SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY recorded_at DESC, chain_id DESC, seq DESC LIMIT {count + 1}"
    grouped: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        grouped.setdefault(name, []).append(value)
    async with state.require_pool().acquire() as conn:
        rows = await conn.fetch(sql, *args)
        await audit.record(conn, state, audit.event_for(
            principal_of(request), "search", "success", resource_type=authz.AUDIT_TYPE,
            query=audit.redact_query(authz.AUDIT_TYPE, grouped)))  # fmt: skip
    return FhirResponse(
        _bundle(
            request,
            rows[:count],
            rows[count - 1] if len(rows) > count else None,
            audit.reason_keyring(state),
        )
    )


def _base(request: Request) -> str:
    # request.base_url drops the mount's root_path; the request's own URL keeps /api/fhir.
    return str(request.url).split("/AuditEvent", 1)[0]


def _bundle(
    request: Request,
    rows: list[asyncpg.Record],
    last: asyncpg.Record | None,
    keyring: Keyring | None,
) -> dict[str, Any]:
    links = [{"relation": "self", "url": str(request.url)}]
    if last is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "_cursor"]
        params.append(("_cursor", _cursor(last)))
        query = "&".join(f"{k}={v}" for k, v in params)
        links.append({"relation": "next", "url": str(request.url.replace(query=query))})
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": [
        {"fullUrl": f"{_base(request)}/AuditEvent/{r['chain_id']}-{r['seq']}", "resource": to_fhir(
            r["chain_id"], r["seq"], r["content"], keyring, _resealed(r)), "search": {"mode": "match"}} for r in rows]}  # fmt: skip


def _resealed(row: asyncpg.Record) -> tuple[str, bytes] | None:
    return (row["resealed_key"], row["resealed"]) if row["resealed"] is not None else None


async def _read(state: ServiceState, request: Request) -> Response:
    await _authorize(state, request, "read")
    rid = request.path_params["id"]
    chain_text, _, seq_text = rid.partition("-")
    chain, seq = ascii_int(chain_text, INT4_MAX), ascii_int(seq_text)
    if chain is None or seq is None:
        raise FhirError(404, "not-found", "AuditEvent not found")
    async with state.require_pool().acquire() as conn:
        row = await conn.fetchrow(
            SELECT + " WHERE chain_id = $1 AND seq = $2", int(chain), int(seq)
        )
        if row is None:
            raise FhirError(404, "not-found", f"AuditEvent/{rid} not found")
        await audit.record(conn, state, audit.event_for(
            principal_of(request), "read", "success", resource_type=authz.AUDIT_TYPE,
            resource_id=rid))  # fmt: skip
    keyring = audit.reason_keyring(state)
    return FhirResponse(
        to_fhir(row["chain_id"], row["seq"], row["content"], keyring, _resealed(row))
    )
