"""REST interactions over real HTTP against a real service and PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
from tests.conftest import Database, Service
from tests.fhir.conftest import client_for

from healthstack.fhir import ops, searchdefs
from healthstack.service.embedded_pg import EmbeddedPostgres

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-REST-0001"}],
    "name": [{"family": "Quillfeather", "given": ["Ambrose"]}],
    "gender": "male",
    "birthDate": "1961-07-14",
}


def test_create_read_update_vread_delete(fhir: httpx.Client) -> None:
    created = fhir.post("/Patient", json=PATIENT)
    assert created.status_code == 201, created.text
    body = created.json()
    pid = body["id"]
    assert created.headers["etag"] == 'W/"1"'
    assert created.headers["location"].endswith(f"/Patient/{pid}/_history/1")
    assert created.headers["content-type"] == "application/fhir+json"
    read = fhir.get(f"/Patient/{pid}")
    assert read.status_code == 200
    assert read.json()["name"][0]["family"] == "Quillfeather"
    updated = fhir.put(
        f"/Patient/{pid}", json={**body, "gender": "other"}, headers={"If-Match": 'W/"1"'}
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == 'W/"2"'
    stale = fhir.put(
        f"/Patient/{pid}", json={**body, "gender": "female"}, headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert fhir.get(f"/Patient/{pid}/_history/1").json()["gender"] == "male"
    assert fhir.delete(f"/Patient/{pid}").status_code == 204
    assert fhir.get(f"/Patient/{pid}").status_code == 410
    history = fhir.get(f"/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]


def _observation(patient_id: str, **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {
            "value": 72,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
        **extra,
    }


def _count(fhir: httpx.Client, query: str) -> int:
    response = fhir.get(f"/Patient?{query}")
    assert response.status_code == 200, response.text
    return len(response.json().get("entry", []))


def test_invalid_resource_is_422_with_expression_and_nothing_stored(fhir: httpx.Client) -> None:
    bad = {
        **PATIENT,
        "identifier": [{"system": "urn:x", "value": "MRN-INVALID-1"}],
        "gender": "robot",
        "birthDate": "1961-02-30",
        "nickname": "x",
    }
    response = fhir.post("/Patient", json=bad)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    expressions = {e for i in outcome["issue"] for e in i.get("expression", [])}
    assert {"Patient.gender", "Patient.birthDate", "Patient.nickname"} <= expressions
    assert "robot" not in response.text
    assert _count(fhir, "identifier=MRN-INVALID-1") == 0
    obs = fhir.post(
        "/Observation",
        json={"resourceType": "Observation", "status": "done", "code": {"text": "x"}},
    )
    assert obs.status_code == 422
    assert obs.json()["issue"][0]["expression"] == ["Observation.status"]


def test_malformed_requests(fhir: httpx.Client) -> None:
    assert fhir.post("/Patient", content=b"{not json").status_code == 400
    assert fhir.post("/Patient", json={**PATIENT, "resourceType": "Observation"}).status_code == 400
    assert (
        fhir.post("/Patient", content=b"{}", headers={"Content-Type": "text/plain"}).status_code
        == 415
    )
    assert fhir.get("/Encounter/1").status_code == 404
    assert fhir.get("/Patient/does-not-exist").status_code == 404
    assert fhir.get("/Patient?nickname=x").status_code == 400
    assert fhir.get("/Patient?family:contains=x").status_code == 400
    assert fhir.get("/Patient?birthdate=sa2000").status_code == 400
    assert fhir.get("/Patient?birthdate=2000-13").status_code == 400
    assert fhir.get("/Observation?date=2020-01-01T10:00").status_code == 400


def test_unauthenticated_is_401_and_metadata_is_truthful(fhir: httpx.Client) -> None:
    assert httpx.get(f"{fhir.base_url}Patient").status_code == 401
    meta = httpx.get(f"{fhir.base_url}metadata").json()
    assert meta["resourceType"] == "CapabilityStatement"
    assert meta["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in meta["rest"][0]["resource"]}
    assert set(resources) == {*ops.TYPES, "AuditEvent"}
    assert len(resources) > 130  # every R4 type but the refused ones (validate.REFUSED)
    names = {p["name"] for p in resources["Patient"]["searchParam"]}
    assert {"_id", "_lastUpdated", "identifier", "family", "given", "name", "birthdate",
            "gender", "address-city", "general-practitioner", "_tag"} <= names  # fmt: skip
    malformed = {"birthdate": "x", "gender": "x"}
    for name, value in malformed.items():
        assert fhir.get(f"/Patient?{name}={value}").status_code == 400, name


SAMPLE_VALUES = {"token": "x", "string": "x", "date": "2000-01-01", "reference": "Patient/x",
                 "number": "1", "quantity": "1", "uri": "http://example.org/x"}  # fmt: skip


def _sample(rtype: str, param: dict[str, str]) -> str:
    if param["type"] != "composite":
        return SAMPLE_VALUES[param["type"]]
    definition = searchdefs.params_of(rtype)[param["name"]]
    parts = [searchdefs.param_by_id(rtype, ref) for ref, _ in definition.components]
    return "$".join(SAMPLE_VALUES[p.type] for p in parts if p is not None)


def test_every_advertised_search_parameter_of_every_type_is_answered(fhir: httpx.Client) -> None:
    """The CapabilityStatement against behaviour: each advertised parameter, a well-formed value."""
    meta = fhir.get("metadata").json()
    for resource in meta["rest"][0]["resource"]:
        if resource["type"] == "AuditEvent":
            continue
        for param in resource["searchParam"]:
            value = _sample(resource["type"], param)
            if param["name"] == "gender":
                value = "female"
            response = fhir.get(f"/{resource['type']}", params={param["name"]: value})
            assert response.status_code == 200, (resource["type"], param, response.text[:200])


def test_prefer_minimal_and_location(fhir: httpx.Client) -> None:
    response = fhir.post("/Patient", json=PATIENT, headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.content == b""
    assert "/_history/1" in response.headers["location"]


def test_conditional_create_retry_returns_existing(fhir: httpx.Client) -> None:
    body = {**PATIENT, "identifier": [{"system": "urn:mrn", "value": "MRN-COND-7"}]}
    headers = {"If-None-Exist": "identifier=urn:mrn|MRN-COND-7"}
    first = fhir.post("/Patient", json=body, headers=headers)
    second = fhir.post("/Patient", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert _count(fhir, "identifier=urn:mrn|MRN-COND-7") == 1


def test_concurrent_conditional_creates_never_duplicate(fhir: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = {**PATIENT, "identifier": [{"system": "urn:mrn", "value": "MRN-RACE-1"}]}
    headers = {**fhir.headers, "If-None-Exist": "identifier=urn:mrn|MRN-RACE-1"}

    def post(_: int) -> int:
        return httpx.post(f"{fhir.base_url}Patient", json=body, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(post, range(8)))
    assert statuses == [200] * 7 + [201]
    assert _count(fhir, "identifier=urn:mrn|MRN-RACE-1") == 1


def _transaction(*entries: dict[str, object]) -> dict[str, object]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_transaction_resolves_urn_references(fhir: httpx.Client) -> None:
    urn = "urn:uuid:5b0d2a44-1d0e-4d7c-9f5e-000000000001"
    patient = {**PATIENT, "identifier": [{"system": "urn:mrn", "value": "MRN-TX-1"}]}
    obs = _observation("placeholder")
    obs["subject"] = {"reference": urn}
    bundle = _transaction(
        {
            "fullUrl": urn,
            "resource": patient,
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": "identifier=urn:mrn|MRN-TX-1",
            },
        },
        {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
    )
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", "201 Created"]
    pid = entries[0]["resource"]["id"]
    assert entries[1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    again = fhir.post("", json=bundle).json()["entry"]
    assert again[0]["response"]["status"] == "200 OK"
    assert again[0]["resource"]["id"] == pid
    assert again[1]["resource"]["subject"]["reference"] == f"Patient/{pid}"


def test_transaction_is_all_or_nothing(fhir: httpx.Client) -> None:
    good = {**PATIENT, "identifier": [{"system": "urn:mrn", "value": "MRN-TX-ROLLBACK"}]}
    bad = _observation("x", status="not-a-status")
    response = fhir.post(
        "",
        json=_transaction(
            {"resource": good, "request": {"method": "POST", "url": "Patient"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
        ),
    )
    assert response.status_code == 422
    assert "Bundle.entry[1]" in response.json()["issue"][0]["diagnostics"]
    assert _count(fhir, "identifier=urn:mrn|MRN-TX-ROLLBACK") == 0


def test_batch_reports_each_entry(fhir: httpx.Client) -> None:
    good = {**PATIENT, "identifier": [{"system": "urn:mrn", "value": "MRN-BATCH-1"}]}
    response = fhir.post(
        "",
        json={
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": good, "request": {"method": "POST", "url": "Patient"}},
                {"request": {"method": "GET", "url": "Patient/no-such-id"}},
                {"request": {"method": "GET", "url": "Patient?identifier=urn:mrn|MRN-BATCH-1"}},
            ],
        },
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"] == "404"
    assert len(entries[2]["resource"]["entry"]) == 1
    assert _count(fhir, "identifier=urn:mrn|MRN-BATCH-1") == 1


def test_patient_token_is_confined_to_its_compartment(
    live_service: Service, fhir: httpx.Client
) -> None:
    mine = fhir.post("/Patient", json=PATIENT).json()["id"]
    other = fhir.post("/Patient", json=PATIENT).json()["id"]
    fhir.post("/Observation", json=_observation(mine))
    fhir.post("/Observation", json=_observation(other))
    with client_for(live_service, "patient/*.rs", patient=mine) as own:
        assert own.get(f"/Patient/{mine}").status_code == 200
        assert own.get(f"/Patient/{other}").status_code == 404
        found = own.get("/Observation?code=http://loinc.org|8867-4").json()["entry"]
        assert {e["resource"]["subject"]["reference"] for e in found} == {f"Patient/{mine}"}
        assert own.post("/Observation", json=_observation(mine)).status_code == 403


def test_every_interaction_is_audited(
    pg: EmbeddedPostgres, module_database: Database, fhir: httpx.Client
) -> None:
    pid = fhir.post("/Patient", json=PATIENT).json()["id"]
    fhir.get(f"/Patient/{pid}")
    probe = uuid.uuid4().hex
    fhir.get("/Patient/no-such-patient-id", headers={"X-Request-Id": probe})
    fhir.put(f"/Patient/{pid}", json={**PATIENT, "id": pid}, headers={"If-Match": 'W/"9"'})
    rows = pg.psql(
        "SELECT interaction || ':' || outcome || ':' || left(resource_id, 2) FROM audit_log "
        f"WHERE resource_id = '{pid}' OR content::jsonb->>'request_id' = '{probe}' "
        "ORDER BY recorded_at",
        database=module_database.name,
    ).split()
    # The id the server never assigned is kept only as a keyed digest (docs/audit.md).
    assert rows == [f"create:success:{pid[:2]}", f"read:success:{pid[:2]}", "read:error:h:",
                    f"update:error:{pid[:2]}"]  # fmt: skip
    assert "no-such-patient-id" not in pg.psql("SELECT content FROM audit_log",
                                               database=module_database.name)  # fmt: skip


def test_type_history_pages_through_every_version(
    live_service: Service, fhir: httpx.Client
) -> None:
    ids = [
        fhir.post("/Observation", json=_observation("hist-patient")).json()["id"] for _ in range(3)
    ]
    first = fhir.get(f"/Observation/{ids[0]}").json()
    assert (
        fhir.put(f"/Observation/{ids[0]}", json={**first, "status": "amended"}).status_code == 200
    )
    seen, url = [], "/Observation/_history?_count=2"
    while url:
        bundle = fhir.get(url).json()
        seen += [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in bundle["entry"]]
        url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), "")
    assert {(i, "1") for i in ids} | {(ids[0], "2")} <= set(seen)
    assert len(seen) == len(set(seen))
    with client_for(live_service, "patient/*.rs", patient="hist-patient") as own:
        mine = own.get("/Observation/_history?_count=100").json()["entry"]
        assert {e["resource"]["subject"]["reference"] for e in mine} == {"Patient/hist-patient"}


def test_retried_update_does_not_mint_versions(fhir: httpx.Client) -> None:
    body = fhir.post("/Patient", json=PATIENT).json()
    changed = {**body, "active": False}
    etags = [fhir.put(f"/Patient/{body['id']}", json=changed).headers["etag"] for _ in range(3)]
    assert etags == ['W/"2"'] * 3
    assert len(fhir.get(f"/Patient/{body['id']}/_history").json()["entry"]) == 2


def test_bundle_posted_to_the_base_without_slash(fhir: httpx.Client) -> None:
    base = str(fhir.base_url).rstrip("/")
    response = httpx.post(
        base,
        json={
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient?gender=unknown&_count=1"}}],
        },
        headers=dict(fhir.headers),
    )
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "batch-response"
    assert httpx.post(base, json={"resourceType": "Bundle", "type": "batch"}).status_code == 401
