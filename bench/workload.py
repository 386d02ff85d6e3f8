"""The measured cases: each an API request mix for wrk and the same request's SQL for bench.rawdb.

The SQL comes from the service's own modules (store, search, vitals, audit), built once here, so
the baseline cannot drift from what a request executes. Per request the API runs (checked with
``log_statement=all``): the query, then ``audit_append`` on the same connection (autocommit for
reads); an ingest Bundle runs, in one transaction, one insert statement for all its entries
(``store.INSERT_MANY_SQL``), one ``audit_append_many`` for their records and one ``audit_append``
for the Bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from bench.rawdb import AUDIT, TIME_MARK, Copy
from bench.seed import MRN_SYSTEM, Seeded, vitals_bundle
from healthstack.core.crypto import Keyring, aad
from healthstack.fhir import extract, index, search
from healthstack.fhir.access import redact
from healthstack.fhir.query import unconfined
from healthstack.fhir.store import GENERIC_TABLES, READ_SQL
from healthstack.fhir.vitals import LASTN_SQL
from healthstack.security.audit import Withheld, content_of, withheld_digest
from healthstack.security.audit_event import AuditEvent

API = "/api/fhir"
FHIR_JSON = "application/fhir+json"
DATE_FROM, DATE_TO = "2024-01-01", "2024-01-02"  # the first day of the seeded hourly series
LASTN_MAX = 3
SUBJECT = "bench"
_FIXED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
Statements = list[tuple[str, Any]]


@dataclass
class Case:
    name: str
    paths: list[str]  # GET request paths (API side); empty for a POST case
    raw: list[Statements | Copy]  # the same requests as bench.rawdb iterations
    body: bytes | None = None  # POST body (ingest)
    resources_per_request: int = 1
    expect: Callable[[Any], bool] | None = None  # checks the probe response (a sanity check)


def entries(count: int) -> Callable[[Any], bool]:
    return lambda body: len(body.get("entry", [])) == count


_DIGESTS = Keyring(b"\x00" * 32)  # any key: a digest has the same size whatever the key


def _stored_query(query: dict[str, Any]) -> dict[str, Any]:
    """The query as the trail stores it: client-typed values as keyed digests (audit._withhold)."""
    return {
        name: [withheld_digest(_DIGESTS, v.value) if isinstance(v, Withheld) else v for v in vs]
        for name, vs in query.items()
    }


def audit_template(interaction: str, rtype: str, **fields: Any) -> tuple[str, str]:
    """The audit record a request writes, its time left as a mark filled at execution."""
    if "query" in fields:
        fields["query"] = _stored_query(fields["query"])
    event = AuditEvent(
        interaction, "success", SUBJECT, resource_type=rtype, source_ip="127.0.0.1",
        request_id=uuid.uuid4().hex, **fields,
    )  # fmt: skip
    text = content_of(event, _FIXED).replace(_FIXED.isoformat(timespec="microseconds"), TIME_MARK)
    return AUDIT, text


def patient_read(seeded: Seeded) -> Case:
    raw: list[Statements | Copy] = [
        [
            (READ_SQL, ["Patient", pid, None]),
            audit_template("read", "Patient", resource_id=pid, version=1),
        ]
        for pid in seeded.patient_ids
    ]
    paths = [f"{API}/Patient/{pid}" for pid in seeded.patient_ids]
    return Case("Patient read", paths, raw, expect=lambda b: b["resourceType"] == "Patient")


def _search(keyring: Keyring, rtype: str, params: list[tuple[str, str]]) -> Statements:
    query = search.Parser(keyring).parse(rtype, params, unconfined)
    fresh = dataclasses.replace(query, args=list(query.args), where=list(query.where))
    sql = search.build_sql(fresh, None, None, query.count + 1)
    return [(sql, fresh.args), audit_template("search", rtype, query=redact(rtype, params))]


def _path(rtype: str, params: list[tuple[str, str]]) -> str:
    return f"{API}/{rtype}?{urlencode(params, quote_via=quote)}"


def identifier_search(seeded: Seeded, keyring: Keyring) -> Case:
    queries = [[("identifier", f"{MRN_SYSTEM}|{mrn}")] for mrn in seeded.mrns]
    raw: list[Statements | Copy] = [_search(keyring, "Patient", q) for q in queries]
    paths = [_path("Patient", q) for q in queries]
    return Case("Patient search identifier", paths, raw, expect=entries(1))


def observation_search(seeded: Seeded, keyring: Keyring) -> Case:
    queries = [
        [("patient", pid), ("date", f"ge{DATE_FROM}"), ("date", f"lt{DATE_TO}")]
        for pid in seeded.patient_ids
    ]
    raw: list[Statements | Copy] = [_search(keyring, "Observation", q) for q in queries]
    paths = [_path("Observation", q) for q in queries]
    return Case("Observation search date", paths, raw, expect=lambda b: len(b.get("entry", [])) > 0)


def condition_search(seeded: Seeded, keyring: Keyring) -> Case:
    """A US Core search answered by the generic engine (reference and token index tables)."""
    queries = [[("patient", pid), ("category", "problem-list-item")] for pid in seeded.patient_ids]
    raw: list[Statements | Copy] = [_search(keyring, "Condition", q) for q in queries]
    paths = [_path("Condition", q) for q in queries]
    return Case("Condition search patient+category", paths, raw, expect=entries(1))


def lastn(seeded: Seeded) -> Case:
    raw: list[Statements | Copy] = []
    paths = []
    for pid in seeded.patient_ids:
        params = [("patient", pid), ("max", str(LASTN_MAX))]
        audit = audit_template(
            "operation", "Observation", detail="$lastn", query=redact("Observation", params)
        )
        raw.append([(LASTN_SQL, [pid, None, None, LASTN_MAX]), audit])
        paths.append(f"{API}/Observation/$lastn?{urlencode(params)}")
    return Case("Observation $lastn", paths, raw, expect=lambda b: len(b.get("entry", [])) > 0)


def ingest(patient_id: str, keyring: Keyring) -> Case:
    """A 100-Observation transaction Bundle; its baseline COPYs the same rows (the API's columns)."""
    bundle = vitals_bundle(patient_id)
    resources = [entry["resource"] for entry in bundle["entry"]]
    copy = copy_rows(resources, keyring)
    body = orjson.dumps(bundle)
    return Case("Vitals ingest (Bundle of 100)", [], [copy], body, len(resources), entries(100))


def copy_rows(resources: list[dict[str, Any]], keyring: Keyring) -> Copy:
    """The rows the API writes for these Observations (``store.Store._arguments``), COPYed."""
    now = dt.datetime.now(dt.UTC)
    current: list[tuple[Any, ...]] = []
    versions: list[tuple[Any, ...]] = []
    vitals: list[tuple[Any, ...]] = []
    generic: dict[str, list[tuple[Any, ...]]] = {table: [] for table in GENERIC_TABLES}
    for position, resource in enumerate(resources):
        rid = str(uuid.uuid4())
        ext = index.extract("Observation", rid, resource)
        rows = extract.rows_of("Observation", rid, resource)
        key_id, blob = keyring.encrypt(
            orjson.dumps({**resource, "id": rid}), aad("Observation", rid, 1)
        )
        current.append(("Observation", rid, 1, False, now, ext.patient_id, ext.code, ext.codes,
                        ext.categories, ext.effective_start, ext.effective_end, ext.gender,
                        key_id, blob, rows.compartment or None))  # fmt: skip
        versions.append(("Observation", rid, 1, False, now, key_id, blob))
        vitals.extend(
            (ext.patient_id, v.code, v.effective, v.value, v.unit, rid) for v in ext.vitals
        )
        for table, found in zip(GENERIC_TABLES, (rows.tokens, rows.strings, rows.dates,
                                                  rows.numbers, rows.references), strict=True):  # fmt: skip
            generic[table].extend(("Observation", position, *row) for row in found)
    if len(vitals) != len(resources):
        raise RuntimeError(f"expected one vitals row per Observation, got {len(vitals)}")
    return Copy(
        tables=[
            ("fhir_resource", RESOURCE_COLUMNS, current),
            ("fhir_resource_version", VERSION_COLUMNS, versions),
            ("fhir_vital", VITAL_COLUMNS, vitals),
            *((table, GENERIC_COLUMNS[table], rows) for table, rows in generic.items()),
        ],
        id_column={
            "fhir_resource": 1,
            "fhir_resource_version": 1,
            "fhir_vital": 5,
            **dict.fromkeys(GENERIC_TABLES, 1),
        },
        positional=frozenset(GENERIC_TABLES),
    )


GENERIC_COLUMNS = {
    "fhir_search_token": ("resource_type", "id", "param", "system", "code"),
    "fhir_search_string": ("resource_type", "id", "param", "normalized", "exact"),
    "fhir_search_date": ("resource_type", "id", "param", "low", "high"),
    "fhir_search_number": ("resource_type", "id", "param", "value", "system", "code"),
    "fhir_search_reference": ("resource_type", "id", "param", "target_type", "target"),
}
RESOURCE_COLUMNS = (
    "resource_type", "id", "version", "deleted", "last_updated", "patient_id", "code", "codes",
    "categories", "effective_start", "effective_end", "gender", "key_id", "body", "compartment",
)  # fmt: skip
VERSION_COLUMNS = ("resource_type", "id", "version", "deleted", "last_updated", "key_id", "body")
VITAL_COLUMNS = ("patient_id", "code", "effective", "value", "unit", "observation_id")


def reads(seeded: Seeded, keyring: Keyring) -> list[Case]:
    return [
        patient_read(seeded),
        identifier_search(seeded, keyring),
        observation_search(seeded, keyring),
        condition_search(seeded, keyring),
        lastn(seeded),
    ]
