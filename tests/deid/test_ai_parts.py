"""A record over AI_MAX_PAYLOAD_BYTES is summarised in parts, then combined; over AI_MAX_PARTS it
is refused. The service runs with the default AI_DATE_MODE (year): no month or day is sent."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import orjson
from tests.conftest import Database
from tests.deid.fake_openai import FakeOpenAI
from tests.deid.record import IDENTIFIERS, patient
from tests.deid.test_ai_summary import audit_records, last_seq, leaks

NOTE = "Zebediah Quillfeather called from (555) 867-5309 about MRN-88213 on 2024-03-01. "
MONTH_OR_DAY = re.compile(rb"\b(?:19|20)\d\d-\d")


AI_ENV = {
    "AI_SUMMARY_TYPES": "Condition",
    "AI_MAX_RETRIES": "0",
    "AI_MAX_PAYLOAD_BYTES": "4096",
    "AI_MAX_PARTS": "6",
}


def patient_with(fhir: httpx.Client, conditions: int) -> str:
    body = {k: v for k, v in patient().items() if k != "id"}
    pid = str(fhir.post("/Patient", json=body).json()["id"])
    for number in range(conditions):
        condition = {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"text": f"problem {number}"},
            "onsetDateTime": f"2024-0{1 + number % 9}-1{number % 10}",
            "note": [{"text": NOTE + "stable. " * 60}],
        }
        assert fhir.post("/Condition", json=condition).status_code == 201
    return pid


def test_a_large_record_is_summarised_in_parts_then_combined(
    fhir: httpx.Client, fake: FakeOpenAI, module_database: Database
) -> None:
    pid = patient_with(fhir, 8)
    preview = fhir.get(f"/Patient/{pid}/$deidentify").json()["parameter"]
    parts = next(p["valueInteger"] for p in preview if p["name"] == "parts")
    assert 2 <= parts <= 6
    before, seq = len(fake.bodies), last_seq(module_database)
    response = fhir.post(f"/Patient/{pid}/$summarize")
    assert response.status_code == 201, response.text
    sent = fake.bodies[before:]
    assert len(sent) == parts + 1  # each part, then the final combining request
    for body in sent:
        assert len(body) <= 4096
        assert leaks(body) == []
        assert MONTH_OR_DAY.search(body) is None  # years only, the default
    final = orjson.loads(sent[-1])["messages"]
    assert f"Summaries of the record's {parts} parts" in final[1]["content"]
    assert "[[NAME-" in final[1]["content"]  # the parts' answers, still de-identified
    disclosures = [
        r for r in audit_records(module_database, seq) if r["interaction"] == "disclosure"
    ]
    # Chains are per writer, so records are matched by hash and label, not by order.
    by_hash = {d["query"]["sha256"]: d["query"] for d in disclosures}
    assert len(disclosures) == parts + 1
    assert set(by_hash) == {hashlib.sha256(b).hexdigest() for b in sent}
    assert {d["resource_id"] for d in disclosures} == {pid}
    final_query = by_hash[hashlib.sha256(sent[-1]).hexdigest()]
    assert final_query["part"] == f"final of {parts} parts"
    held = [by_hash[hashlib.sha256(b).hexdigest()]["resources"] for b in sent[:-1]]
    assert all(f"Patient/{pid}" in part for part in held)  # the Patient in every part
    assert sum(len(part) - 1 for part in held) == 8  # each Condition in exactly one part
    assert sorted(final_query["resources"]) == sorted({r for part in held for r in part})
    document = response.json()
    assert f"combined from {parts} part summaries" in document["description"]
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    assert "Zebediah" in text  # re-identified inside the service
    assert f"Combined from {parts} part summaries" in text
    assert [v for v in IDENTIFIERS if v in document["description"]] == []


def test_a_record_needing_too_many_parts_is_refused(fhir: httpx.Client, fake: FakeOpenAI) -> None:
    pid = patient_with(fhir, 30)
    before = len(fake.bodies)
    response = fhir.post(f"/Patient/{pid}/$summarize")
    assert response.status_code == 413
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "AI_MAX_PARTS (6)" in diagnostics
    assert "nothing was sent" in diagnostics
    assert len(fake.bodies) == before


def test_a_failed_part_stores_nothing_and_the_parts_sent_stay_disclosed(
    fhir: httpx.Client, fake: FakeOpenAI, module_database: Database
) -> None:
    pid = patient_with(fhir, 8)
    before, seq = len(fake.bodies), last_seq(module_database)
    fake.script[:] = ["ok", "500"]
    response = fhir.post(f"/Patient/{pid}/$summarize")
    assert response.status_code == 502
    assert len(fake.bodies) == before + 2  # the second part failed: nothing further was sent
    disclosures = [
        r for r in audit_records(module_database, seq) if r["interaction"] == "disclosure"
    ]
    assert sorted(d["query"]["part"] for d in disclosures)[0].startswith("part 1 of ")
    assert len(disclosures) == 2
    after = fhir.get("/DocumentReference", params={"subject": f"Patient/{pid}"}).json()
    assert after.get("entry", []) == []  # no summary of part of the record is stored
