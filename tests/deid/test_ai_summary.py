"""``$deidentify`` and ``$summarize`` against a live service and a fake provider on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from tests.conftest import Database, Service
from tests.deid.conftest import SCOPES
from tests.deid.fake_openai import FakeOpenAI
from tests.deid.record import DATES, IDENTIFIERS, PATIENT_ID, record
from tests.fhir.conftest import FULL_SCOPES, client_for

TYPES = "Encounter,Observation,Condition,Device,DocumentReference"


AI_ENV = {
    "AI_SUMMARY_TYPES": TYPES,
    "AI_TIMEOUT_SECONDS": "1",
    "AI_MAX_RETRIES": "1",
    "AI_RETRY_BACKOFF_SECONDS": "0",
    "AI_BREAKER_THRESHOLD": "100",
    "AI_MAX_PAYLOAD_BYTES": "60000",
    "AI_MAX_RESOURCES": "20",
    "AI_DATE_MODE": "shift",  # these tests check the shift; test_ai_parts.py the default
}


@pytest.fixture(scope="module")
def summarize(fhir: httpx.Client) -> str:
    """The record stored (server-assigned ids replacing the fixture's): the $summarize path."""
    renamed: dict[str, str] = {}
    for resource in record():
        text = orjson.dumps(resource).decode()
        for old, new in renamed.items():
            text = text.replace(f'/{old}"', f'/{new}"')
        body = orjson.loads(text)
        old_id = body.pop("id")
        response = fhir.post(f"/{body['resourceType']}", json=body)
        assert response.status_code == 201, response.text
        renamed[old_id] = response.json()["id"]
    return f"/Patient/{renamed[PATIENT_ID]}/$summarize"


def leaks(body: bytes) -> list[str]:
    text = body.decode().lower()
    return [value for value in IDENTIFIERS if value.lower() in text]


def sent_record(body: bytes) -> list[dict[str, Any]]:
    content = orjson.loads(body)["messages"][1]["content"]
    return list(orjson.loads(content.split("\n", 1)[1]))


def audit_records(db: Database, since: dict[int, int]) -> list[dict[str, Any]]:
    """Records appended after ``since``: sequence numbers count per chain (one per writer)."""
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute("SELECT chain_id, seq, content FROM audit_log ORDER BY chain_id, seq")
        fresh = [r[2] for r in rows.fetchall() if r[1] > since.get(r[0], 0)]
    return [c if isinstance(c, dict) else json.loads(c) for c in fresh]


def last_seq(db: Database) -> dict[int, int]:
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute("SELECT chain_id, max(seq) FROM audit_log GROUP BY chain_id")
        return {int(chain): int(seq) for chain, seq in rows.fetchall()}


def test_summary_sends_no_identifier_and_is_reidentified(
    fhir: httpx.Client, summarize: str, fake: FakeOpenAI, module_database: Database
) -> None:
    before, seq = len(fake.bodies), last_seq(module_database)
    response = fhir.post(summarize)
    assert response.status_code == 201, response.text
    sent = fake.bodies[before:]
    assert len(sent) == 1
    assert leaks(sent[0]) == []
    assert fake.headers[-1]["Authorization"] == "Bearer test-provider-key"
    request = orjson.loads(sent[0])
    assert (request["model"], request["max_tokens"], request["temperature"]) == (
        "test-model",
        1000,
        0,
    )
    document = response.json()
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "AIAST",
        "display": "Artificial Intelligence asserted",
    } in document["meta"]["tag"]
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    assert "Zebediah" in text or "Quillfeather" in text  # re-identified inside the service
    assert "[[" not in text
    assert DATES["start"][:10] in text  # the shifted date moved back
    stored = fhir.get(f"/DocumentReference/{document['id']}").json()
    assert stored["content"] == document["content"]
    found = fhir.get("/Provenance", params={"target": f"DocumentReference/{document['id']}"})
    provenance = found.json()["entry"][0]["resource"]
    assert "AI model test-model at 127.0.0.1" in [a["who"]["display"] for a in provenance["agent"]]
    assert len(provenance["entity"]) == 5
    records = audit_records(module_database, seq)
    interactions = [(r["interaction"], r["resource_type"]) for r in records]
    assert interactions.count(("read", "Patient")) == 1
    assert ("create", "DocumentReference") in interactions
    assert ("create", "Provenance") in interactions
    disclosures = [r for r in records if r["interaction"] == "disclosure"]
    assert len(disclosures) == 1
    query = disclosures[0]["query"]
    assert query["kind"] == "ai-summary"
    assert query["provider"] == "127.0.0.1"
    assert query["model"] == "test-model"
    assert query["sha256"] == hashlib.sha256(sent[0]).hexdigest()
    # Device is outside the R4 Patient compartment here: gathered by no compartment, never sent.
    assert sorted(r.split("/")[0] for r in query["resources"]) == [
        "Condition",
        "DocumentReference",
        "Encounter",
        "Observation",
        "Patient",
    ]
    assert disclosures[0]["resource_type"] == "Patient"
    assert leaks(orjson.dumps(disclosures)) == []  # ids of client choice are keyed digests


def test_dates_shift_consistently_in_what_is_sent(
    fhir: httpx.Client, summarize: str, fake: FakeOpenAI
) -> None:
    assert fhir.post(summarize).status_code == 201
    resources = {r["resourceType"]: r for r in sent_record(fake.bodies[-1])}
    period = resources["Encounter"]["period"]
    start = dt.date.fromisoformat(period["start"][:10])
    shift = start - dt.date.fromisoformat(DATES["start"][:10])
    assert 30 <= abs(shift.days) <= 365
    assert dt.date.fromisoformat(period["end"]) - shift == dt.date.fromisoformat(DATES["end"])
    born = dt.date.fromisoformat(resources["Patient"]["birthDate"])
    assert born - shift == dt.date.fromisoformat(DATES["birth"])


def test_deidentify_previews_exactly_the_payload(
    fhir: httpx.Client, summarize: str, fake: FakeOpenAI
) -> None:
    before = len(fake.bodies)
    response = fhir.get(summarize.replace("$summarize", "$deidentify"))
    assert response.status_code == 200, response.text
    params = {p["name"]: p for p in response.json()["parameter"]}
    payload = params["payload"]["valueString"].encode()
    assert leaks(payload) == []
    assert hashlib.sha256(payload).hexdigest() == params["sha256"]["valueString"]
    assert params["model"]["valueString"] == "test-model"
    assert len(fake.bodies) == before  # a preview sends nothing
    assert orjson.loads(payload)["messages"][0]["role"] == "system"
    patient = next(
        r for r in fhir.get("/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient"
    )
    assert {"deidentify", "summarize"} <= {o["name"] for o in patient["operation"]}


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        ("invalid-json", 502),
        ("500", 502),
        ("429", 503),
        ("timeout", 504),
        ("unknown-placeholder", 502),
        ("truncated", 502),
        ("huge", 502),
        ("redirect", 502),
        ("empty", 502),
        ("wrong-shape", 502),
    ],
)
def test_bad_provider_answers_are_refused_and_audited(
    fhir: httpx.Client,
    summarize: str,
    fake: FakeOpenAI,
    module_database: Database,
    behaviour: str,
    status: int,
) -> None:
    before, seq = len(fake.bodies), last_seq(module_database)
    documents = fhir.get("/DocumentReference", params={"_summary": "count"}).json()["total"]
    fake.script[:] = [behaviour, behaviour]
    response = fhir.post(summarize)
    fake.script.clear()
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "$summarize" in outcome["issue"][0]["diagnostics"]
    after = fhir.get("/DocumentReference", params={"_summary": "count"}).json()["total"]
    assert after == documents  # nothing stored
    records = audit_records(module_database, seq)
    attempts = len(fake.bodies) - before
    assert [r["interaction"] for r in records].count("disclosure") == attempts
    assert any(r["interaction"] == "operation" and r["outcome"] == "error" for r in records)
    retried = behaviour in ("500", "429", "timeout")
    assert attempts == (2 if retried else 1)


def test_a_spent_daily_budget_sends_nothing(
    fhir: httpx.Client, summarize: str, fake: FakeOpenAI, module_database: Database
) -> None:
    spend = (
        "INSERT INTO ai_token_budget VALUES ((now() AT TIME ZONE 'UTC')::date, %s) "
        "ON CONFLICT (day) DO UPDATE SET used = EXCLUDED.used"
    )
    before = len(fake.bodies)
    with psycopg.connect(module_database.owner_url, autocommit=True) as conn:
        conn.execute(spend, (10**12,))
        try:
            response = fhir.post(summarize)
        finally:
            conn.execute(spend, (0,))
    assert response.status_code == 429
    assert "AI_DAILY_TOKEN_BUDGET" in response.json()["issue"][0]["diagnostics"]
    assert len(fake.bodies) == before


def test_patient_opt_out_is_honoured(fhir: httpx.Client, summarize: str, fake: FakeOpenAI) -> None:
    consent = {
        "resourceType": "Consent",
        "id": "optout-1",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/" + summarize.split("/")[2]},
        "provision": {
            "type": "deny",
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "disclose",
                        }
                    ]
                }
            ],
        },
    }
    created = fhir.post("/Consent", json=consent)
    assert created.status_code == 201, created.text
    before = len(fake.bodies)
    try:
        response = fhir.post(summarize)
        assert response.status_code == 403
        assert "opted out" in response.json()["issue"][0]["diagnostics"]
        assert len(fake.bodies) == before
    finally:
        assert fhir.delete(f"/Consent/{created.json()['id']}").status_code in (200, 204)


def test_the_dedicated_scope_is_required(
    service: Service, summarize: str, fake: FakeOpenAI, module_database: Database
) -> None:
    before, seq = len(fake.bodies), last_seq(module_database)
    with client_for(service, FULL_SCOPES) as plain:
        assert plain.post(summarize).status_code == 403
        assert plain.get(summarize.replace("$summarize", "$deidentify")).status_code == 403
    with client_for(service, SCOPES) as other:
        assert other.post("/Patient/not-a-patient/$summarize").status_code == 404
    with client_for(service, "user/*.rs user/Patient.$summarize") as reader:  # cannot store it
        refused = reader.post(summarize)
        assert refused.status_code == 403
        assert "create on DocumentReference" in refused.json()["issue"][0]["diagnostics"]
    assert len(fake.bodies) == before
    denied = [r for r in audit_records(module_database, seq) if r["outcome"] == "denied"]
    assert len(denied) == 3
    assert sum("user/Patient.$summarize" in r["detail"] for r in denied) == 2


def test_no_recent_data_and_oversized_records_send_nothing(
    fhir: httpx.Client, summarize: str, fake: FakeOpenAI
) -> None:
    before = len(fake.bodies)
    empty = fhir.post("/Patient", json={"resourceType": "Patient", "gender": "female"}).json()
    response = fhir.post(f"/Patient/{empty['id']}/$summarize")
    assert response.status_code == 422
    assert "nothing was sent" in response.json()["issue"][0]["diagnostics"]
    big = fhir.post("/Patient", json={"resourceType": "Patient", "gender": "male"}).json()["id"]
    note = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{big}"},
        "code": {"text": "long history"},
        "note": [{"text": "stable. " * 9000}],
    }
    assert fhir.post("/Condition", json=note).status_code == 201
    response = fhir.post(f"/Patient/{big}/$summarize")
    assert response.status_code == 413
    assert "AI_MAX_PAYLOAD_BYTES" in response.json()["issue"][0]["diagnostics"]
    assert fhir.post(f"/Patient/{big}/$summarize?_type=Observation").status_code == 422
    assert fhir.post(f"{summarize}?_type=Patient").status_code == 400
    assert fhir.post(f"{summarize}?_since=2999-01-01").status_code == 422  # narrowed to nothing
    many = fhir.post("/Patient", json={"resourceType": "Patient", "gender": "male"}).json()["id"]
    for number in range(21):  # one over AI_MAX_RESOURCES
        condition = {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{many}"},
            "code": {"text": f"problem {number}"},
        }
        assert fhir.post("/Condition", json=condition).status_code == 201
    response = fhir.post(f"/Patient/{many}/$summarize")
    assert response.status_code == 413
    assert "AI_MAX_RESOURCES" in response.json()["issue"][0]["diagnostics"]
    assert len(fake.bodies) == before


def test_nothing_about_the_patient_reaches_the_logs(
    service: Service, fhir: httpx.Client, summarize: str, fake: FakeOpenAI
) -> None:
    assert fhir.post(summarize).status_code == 201  # at least one full round trip logged
    logs = service.logs()
    assert leaks(logs.encode()) == []
    assert "De-identified record" not in logs  # no payload
    assert "[[" not in logs  # no placeholder, so no answer either
    assert "test-provider-key" not in logs


def test_names_of_referenced_people_never_reach_the_provider(
    fhir: httpx.Client, summarize: str, fake: FakeOpenAI, module_database: Database
) -> None:
    pid = summarize.split("/")[2]
    doctor = {
        "resourceType": "Practitioner",
        "name": [{"family": "Wolstenholme", "given": ["Ottilie"]}],
    }
    doctor_id = fhir.post("/Practitioner", json=doctor).json()["id"]
    relative = {
        "resourceType": "RelatedPerson",
        "patient": {"reference": f"Patient/{pid}"},
        "name": [{"family": "Thistlewood", "given": ["Peregrine"]}],
        "birthDate": "1930-02-03",
    }
    assert fhir.post("/RelatedPerson", json=relative).status_code == 201
    seen = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "performer": [{"reference": f"Practitioner/{doctor_id}"}],
        "code": {"text": "visit note"},
        "valueString": "ottilie reviewed; peregrine thistlewood brought him in.",
    }
    assert fhir.post("/Observation", json=seen).status_code == 201
    before, seq = len(fake.bodies), last_seq(module_database)
    assert fhir.post(summarize).status_code == 201
    sent = fake.bodies[before].decode().lower()
    for name in ("ottilie", "wolstenholme", "peregrine", "thistlewood", doctor_id.lower()):
        assert name not in sent
    reads = [r for r in audit_records(module_database, seq) if r["interaction"] == "read"]
    assert {r["resource_type"] for r in reads if "names to scrub" in r["detail"]} == {
        "Practitioner",
        "RelatedPerson",
    }


def test_too_many_referenced_people_are_refused(fhir: httpx.Client, fake: FakeOpenAI) -> None:
    pid = fhir.post("/Patient", json={"resourceType": "Patient", "gender": "male"}).json()["id"]
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"text": "asthma"},
    }
    assert fhir.post("/Condition", json=condition).status_code == 201
    for number in range(21):  # one over AI_MAX_RESOURCES: names a silent cap would miss
        relative = {
            "resourceType": "RelatedPerson",
            "patient": {"reference": f"Patient/{pid}"},
            "name": [{"family": f"Relative{number}"}],
        }
        assert fhir.post("/RelatedPerson", json=relative).status_code == 201
    before = len(fake.bodies)
    response = fhir.post(f"/Patient/{pid}/$summarize")
    assert response.status_code == 413
    assert "people and organisations" in response.json()["issue"][0]["diagnostics"]
    assert len(fake.bodies) == before
