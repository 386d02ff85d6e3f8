"""What ``$summarize`` and ``$deidentify`` read: the patient's recent record, after the dedicated
scope, the ordinary read scopes, the compartment and the patient's Consent have all said yes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from healthstack.ai.settings import AiSettings
from healthstack.core.outcome import FhirError
from healthstack.fhir import searchdefs
from healthstack.fhir.access import DENIAL_AUDITED, Caller
from healthstack.fhir.store import Store

# A scope no wildcard grants: sending a record to an outside model is a decision of its own.
SUMMARIZE_SCOPES = frozenset({"user/Patient.$summarize", "system/Patient.$summarize"})
RECENT_SQL = """
SELECT resource_type, id, version, deleted, last_updated, key_id, body FROM fhir_resource
WHERE compartment @> ARRAY[$1]::text[] AND NOT deleted AND resource_type = ANY($2::text[])
  AND last_updated >= $3
ORDER BY last_updated DESC, resource_type, id LIMIT $4
"""
CONSENT_SQL = """
SELECT resource_type, id, version, deleted, last_updated, key_id, body FROM fhir_resource
WHERE compartment @> ARRAY[$1]::text[] AND NOT deleted AND resource_type = 'Consent'
"""
CONSENT_ACTIONS = frozenset({"disclose", "ai-summary"})
# People and organisations the record refers to, and the patient's relatives: read only so that
# free text loses their names (docs/ai.md), never sent. Bounded like the record itself.
NAME_SOURCES = (
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Organization",
    "Location",
    "Person",
)
NAMES_SQL = """
SELECT resource_type, id, version, deleted, last_updated, key_id, body FROM fhir_resource
WHERE NOT deleted AND (
  (resource_type, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
  OR (resource_type = 'RelatedPerson' AND compartment @> ARRAY[$3]::text[]))
ORDER BY resource_type, id LIMIT $4
"""


@dataclass(frozen=True)
class Wanted:
    patient: str
    types: tuple[str, ...]
    since: dt.datetime


@dataclass(frozen=True)
class Gathered:
    resources: list[dict[str, Any]]  # the Patient first, then the recent record
    read: list[tuple[str, str]]
    names_from: list[dict[str, Any]]  # referenced people and organisations: names to scrub


def parse(settings: AiSettings, patient: str, params: list[tuple[str, str]]) -> Wanted:
    now = dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(days=settings.window_days)
    types = settings.types
    for name, value in params:
        if name == "_type":
            asked = tuple(t for t in value.split(",") if t)
            outside = [t for t in asked if t not in settings.types]
            if outside or not asked:
                raise FhirError(
                    400, "invalid", "_type: summaries cover only " + ", ".join(settings.types)
                )
            types = asked
        elif name == "_since":
            from healthstack.core.dates import interval

            try:
                since = max(since, interval(value)[0])  # never wider than the window
            except ValueError:
                raise FhirError(400, "invalid", "_since: expected a FHIR instant") from None
        else:
            raise FhirError(400, "invalid", f"parameter {name[:64]!r}: supported: _type, _since")
    return Wanted(patient, types, since)


async def authorize(caller: Caller, patient: str, what: str) -> None:
    """The dedicated scope, then a read of the Patient (403 either way, audited)."""
    if SUMMARIZE_SCOPES.isdisjoint(caller.principal.scopes):
        caller.marks[DENIAL_AUDITED] = True
        message = f"{what} needs the scope user/Patient.$summarize"
        await caller.record_detached(
            "operation", "denied", resource_type="Patient", resource_id=patient, detail=message
        )
        raise FhirError(403, "forbidden", message)
    await caller.authorize("Patient", "read", resource_id=patient, detail=what)


async def gather(
    store: Store, caller: Caller, conn: asyncpg.Connection, wanted: Wanted, limit: int, what: str
) -> Gathered:
    patient = await store.read(conn, "Patient", wanted.patient, caller.patient_for("Patient"))
    await _honour_consent(store, caller, conn, wanted.patient, what)
    types = [
        t for t in wanted.types if searchdefs.in_some_compartment(t) and caller.may(t, "search")
    ]
    rows = await conn.fetch(RECENT_SQL, wanted.patient, types, wanted.since, limit + 1)
    if len(rows) > limit:
        raise FhirError(
            413,
            "too-costly",
            f"{what}: the record has more than {limit} recent "
            "resources (AI_MAX_RESOURCES); narrow it with _type or _since",
        )
    versions = [patient, *(store.open(r["resource_type"], r["id"], r) for r in rows)]
    read = [(v.resource_type, v.id) for v in versions]
    await caller.audit_reads(conn, read, what)
    resources = [orjson.loads(v.body or b"{}") for v in versions]
    names_from = await _name_sources(store, caller, conn, wanted.patient, resources, limit, what)
    return Gathered(resources, read, names_from)


async def _name_sources(
    store: Store,
    caller: Caller,
    conn: asyncpg.Connection,
    patient: str,
    resources: list[dict[str, Any]],
    limit: int,
    what: str,
) -> list[dict[str, Any]]:
    """The resources the record refers to by a person's or organisation's reference, and the
    patient's RelatedPersons: their names are scrubbed from free text. Read (and audited as
    reads) by the service for that purpose only; nothing of them is sent or answered."""
    wanted = sorted(_references(resources))
    rows = await conn.fetch(
        NAMES_SQL, [t for t, _ in wanted], [i for _, i in wanted], patient, limit + 1
    )
    if len(rows) > limit:  # a silent cap would let names through: refused instead
        raise FhirError(
            413,
            "too-costly",
            f"{what}: the record refers to more than {limit} people and organisations "
            "(AI_MAX_RESOURCES); narrow it with _type or _since",
        )
    versions = [store.open(r["resource_type"], r["id"], r) for r in rows]
    if versions:
        await caller.audit_reads(
            conn, [(v.resource_type, v.id) for v in versions], f"{what}: names to scrub"
        )
    return [orjson.loads(v.body or b"{}") for v in versions]


def _references(value: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference.count("/") == 1:
            rtype, rid = reference.split("/")
            if rtype in NAME_SOURCES:
                found.add((rtype, rid))
        for item in value.values():
            found |= _references(item)
    return found


async def _honour_consent(
    store: Store, caller: Caller, conn: asyncpg.Connection, patient: str, what: str
) -> None:
    """An active Consent denying disclosure (or everything) is an opt-out: 403, audited."""
    for row in await conn.fetch(CONSENT_SQL, patient):
        consent = orjson.loads(store.open("Consent", row["id"], row).body or b"{}")
        if _opts_out(consent):
            caller.marks[DENIAL_AUDITED] = True
            message = f"{what}: the patient has opted out (an active Consent denies disclosure)"
            await caller.record_detached(
                "operation",
                "denied",
                resource_type="Patient",
                resource_id=patient,
                detail=f"{what}: patient opt-out",
            )
            raise FhirError(403, "forbidden", message)


def _opts_out(consent: dict[str, Any]) -> bool:
    provision = consent.get("provision")
    if consent.get("status") != "active" or not isinstance(provision, dict):
        return False
    if provision.get("type") != "deny":
        return False
    actions = provision.get("action")
    if not actions:
        return True  # a denial without actions denies everything
    codes = {
        c.get("code")
        for a in actions
        if isinstance(a, dict)
        for c in a.get("coding", [])
        if isinstance(c, dict)
    }
    return not CONSENT_ACTIONS.isdisjoint(codes)
