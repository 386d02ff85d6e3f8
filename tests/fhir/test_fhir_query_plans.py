"""Every US Core search uses indexes, not sequential scans, on 100k+ resources (issue 13 item 6).

The rows are made in SQL (generate_series) in the shapes the write path produces: 20,000
patients, each with an Encounter, a Condition, two Observations and a MedicationRequest, and
their index rows, then ANALYZE. Each search's SQL is built by the real parser and EXPLAINed.
"""

from __future__ import annotations

import asyncio
import os
import re

import asyncpg
import pytest
from tests.conftest import Database

from healthstack.core.crypto import Keyring
from healthstack.fhir import search

PATIENTS = 20_000
TYPES = ("Encounter", "Condition", "Observation", "MedicationRequest")
FILL = f"""
INSERT INTO fhir_resource (resource_type, id, version, deleted, last_updated, patient_id,
                           key_id, body, compartment)
SELECT 'Patient', 'p' || g, 1, false, now(), 'p' || g, 'k', '\\x00', ARRAY['p' || g]
FROM generate_series(1, {PATIENTS}) g;
INSERT INTO fhir_resource (resource_type, id, version, deleted, last_updated, patient_id, code,
                           codes, categories, effective_start, effective_end, key_id, body,
                           compartment)
SELECT t, t || g || '-' || n, 1, false, now(), 'p' || g,
       CASE WHEN t = 'Observation' THEN 'http://loinc.org|' || (1000 + g % 500) END,
       CASE WHEN t = 'Observation' THEN ARRAY['http://loinc.org|' || (1000 + g % 500)] END,
       CASE WHEN t = 'Observation' THEN ARRAY['laboratory'] END,
       timestamptz '2024-01-01' + (g % 365) * interval '1 day',
       timestamptz '2024-01-01' + (g % 365) * interval '1 day' + interval '1 hour',
       'k', '\\x00', ARRAY['p' || g]
FROM generate_series(1, {PATIENTS}) g, unnest(ARRAY{list(TYPES)}) t,
     generate_series(1, CASE WHEN t = 'Observation' THEN 2 ELSE 1 END) n;
INSERT INTO fhir_search_reference (resource_type, id, param, target_type, target)
SELECT resource_type, id, p, 'Patient', patient_id FROM fhir_resource,
       unnest(ARRAY['patient', 'subject']) p WHERE resource_type <> 'Patient';
INSERT INTO fhir_search_token (resource_type, id, param, system, code)
SELECT resource_type, id, 'category', 'http://example.org', 'cat-' || (length(id) % 3)
FROM fhir_resource WHERE resource_type IN ('Condition', 'MedicationRequest');
INSERT INTO fhir_search_token (resource_type, id, param, system, code)
SELECT resource_type, id, 'code', 'http://snomed.info/sct', 'c' || (length(id) % 50)
FROM fhir_resource WHERE resource_type = 'Condition';
INSERT INTO fhir_search_token (resource_type, id, param, system, code)
SELECT resource_type, id, 'intent', NULL, 'order' FROM fhir_resource
WHERE resource_type = 'MedicationRequest';
INSERT INTO fhir_search_date (resource_type, id, param, low, high)
SELECT resource_type, id, 'date', effective_start, effective_end FROM fhir_resource
WHERE resource_type = 'Encounter';
ANALYZE;
"""
# (type, params): the US Core SHALL searches that run on the generic tables and on the columns.
SEARCHES = [
    ("Patient", [("_id", "p77")]),
    ("Encounter", [("patient", "p77")]),
    ("Encounter", [("patient", "p77"), ("date", "ge2024-03-01")]),
    ("Condition", [("patient", "p77")]),
    ("Condition", [("patient", "p77"), ("category", "cat-1")]),
    ("Condition", [("patient", "p77"), ("code", "http://snomed.info/sct|c7")]),
    ("Observation", [("patient", "p77"), ("category", "laboratory")]),
    ("Observation", [("patient", "p77"), ("code", "http://loinc.org|1077")]),
    ("Observation", [("patient", "p77"), ("category", "laboratory"), ("date", "ge2024-01-01")]),
    ("MedicationRequest", [("patient", "p77"), ("intent", "order")]),
]


@pytest.fixture(scope="module")
def filled(module_database: Database) -> Database:
    async def fill() -> None:
        conn = await asyncpg.connect(module_database.owner_url)
        try:
            await conn.execute(FILL)
        finally:
            await conn.close()

    asyncio.run(fill())
    return module_database


def _plan(db: Database, rtype: str, params: list[tuple[str, str]], patient: str | None) -> str:
    query = search.Parser(Keyring(os.urandom(32))).parse(rtype, params, lambda _type: patient)
    sql = search.build_sql(query, patient, None, 21)

    async def explain() -> str:
        conn = await asyncpg.connect(db.url)
        try:
            rows = await conn.fetch("EXPLAIN " + sql, *query.args)
            return "\n".join(r[0] for r in rows)
        finally:
            await conn.close()

    return asyncio.run(explain())


@pytest.mark.parametrize(("rtype", "params"), SEARCHES, ids=[f"{t}?{p}" for t, p in SEARCHES])
@pytest.mark.parametrize("patient", [None, "p77"], ids=["user", "patient-context"])
def test_us_core_searches_use_indexes(filled: Database, rtype: str,
                                      params: list[tuple[str, str]], patient: str | None) -> None:  # fmt: skip
    plan = _plan(filled, rtype, params, patient)
    scans = re.findall(r"Seq Scan on (\w+)", plan)
    assert scans == [], plan
    assert "Index" in plan, plan  # and it is an index that answers, not a constant-false shortcut
