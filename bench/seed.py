"""Seed data through the API itself: Patients and vitals in transaction Bundles of 100 entries.

Seeding goes through the same path that is measured, so a seeded database is one the API wrote
(encrypted bodies, blind-index tokens, vitals rows, audit records).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from healthstack.ops.samples import vital_sign

LOINC = "http://loinc.org"
HEART_RATE, SYSTOLIC = "8867-4", "8480-6"
MRN_SYSTEM = "urn:healthstack:bench:mrn"
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
BUNDLE_SIZE = 100
SEED_CONCURRENCY = 4
FHIR_JSON = "application/fhir+json"


@dataclass
class Seeded:
    patient_ids: list[str] = field(default_factory=list)
    mrns: list[str] = field(default_factory=list)
    observations: int = 0
    conditions: int = 0
    seconds: float = 0.0


def patient(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": mrn(i)}],
        "name": [{"family": f"Bench{i}", "given": ["Load"]}],
        "gender": ("female", "male")[i % 2],
        "birthDate": f"{1940 + i % 60}-0{1 + i % 9}-1{i % 9}",
    }


CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def conditions(patient_id: str) -> list[dict[str, Any]]:
    """Two Conditions a patient: one on the problem list, one an encounter diagnosis (the generic
    engine's index tables, searched like US Core does)."""
    return [
        {"resourceType": "Condition", "subject": {"reference": f"Patient/{patient_id}"},
         "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": category}]}],
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                        "condition-clinical", "code": "active"}]},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
         "onsetDateTime": "2020-01-01"}
        for category, code in (("problem-list-item", "44054006"),
                               ("encounter-diagnosis", "38341003"))
    ]  # fmt: skip


def mrn(i: int) -> str:
    return f"MRN{i:07d}"


def observation(patient_id: str, i: int) -> dict[str, Any]:
    """Heart rate and systolic pressure alternately, one an hour from START (two a day of each)."""
    code, unit = (HEART_RATE, "/min") if i % 2 == 0 else (SYSTOLIC, "mm[Hg]")
    when = (START + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return vital_sign(patient_id, code, when, 60 + (i * 7) % 60, unit)


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [
        {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def vitals_bundle(patient_id: str, count: int = BUNDLE_SIZE, offset: int = 0) -> dict[str, Any]:
    return transaction([observation(patient_id, offset + i) for i in range(count)])


async def _post(client: httpx.AsyncClient, bundle: dict[str, Any]) -> list[str]:
    response = await client.post("", json=bundle)
    if response.status_code != 200:
        raise RuntimeError(f"seeding Bundle answered {response.status_code}: {response.text[:300]}")
    return [e["response"]["location"].split("/")[1] for e in response.json()["entry"]]


async def _seed(
    base_url: str, token: str, patients: int, per_patient: int, with_conditions: bool
) -> Seeded:
    seeded = Seeded(mrns=[mrn(i) for i in range(patients)])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
    limit = asyncio.Semaphore(SEED_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client:

        async def post(bundle: dict[str, Any]) -> list[str]:
            async with limit:
                return await _post(client, bundle)

        chunks = [range(s, min(s + BUNDLE_SIZE, patients)) for s in range(0, patients, BUNDLE_SIZE)]
        for ids in await asyncio.gather(
            *(post(transaction([patient(i) for i in c])) for c in chunks)
        ):
            seeded.patient_ids.extend(ids)
        jobs = [
            post(vitals_bundle(pid, min(BUNDLE_SIZE, per_patient - offset), offset))
            for pid in seeded.patient_ids
            for offset in range(0, per_patient, BUNDLE_SIZE)
        ]
        seeded.observations = sum(len(ids) for ids in await asyncio.gather(*jobs))
        if with_conditions:
            seeded.conditions = await _conditions(post, seeded.patient_ids)
    return seeded


async def _conditions(post: Callable[[dict[str, Any]], Awaitable[list[str]]],
                      patient_ids: list[str]) -> int:  # fmt: skip
    per_bundle = BUNDLE_SIZE // 2
    groups = [patient_ids[s : s + per_bundle] for s in range(0, len(patient_ids), per_bundle)]
    posted = await asyncio.gather(
        *(post(transaction([c for pid in g for c in conditions(pid)])) for g in groups)
    )
    return sum(len(ids) for ids in posted)


def seed(
    base_url: str, token: str, patients: int, per_patient: int, with_conditions: bool = True
) -> Seeded:
    """``patients`` Patients and ``per_patient`` Observations each, via the FHIR API, and two
    Conditions each unless ``with_conditions`` is False (for trees older than issue 13)."""
    loop_started = dt.datetime.now(dt.UTC)
    seeded = asyncio.run(
        _seed(f"{base_url}/api/fhir", token, patients, per_patient, with_conditions)
    )
    seeded.seconds = (dt.datetime.now(dt.UTC) - loop_started).total_seconds()
    return seeded
