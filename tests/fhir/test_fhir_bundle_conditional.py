"""Conditional update/delete inside Bundles and batch robustness (issue 15, items 2 and 9)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson
import psycopg
from tests.conftest import Database, Service
from tests.fhir.conftest import client_for


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _patient(value: str, gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "gender": gender,
            "identifier": [{"system": "urn:bundle-cond", "value": value}]}  # fmt: skip


def _observation(subject: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "t"},
            "subject": {"reference": subject}}  # fmt: skip


def _matching(fhir: httpx.Client, value: str) -> list[dict[str, Any]]:
    found = fhir.get("/Patient", params={"identifier": f"urn:bundle-cond|{value}"}).json()
    return [e["resource"] for e in found.get("entry", [])]


def test_transaction_conditional_update_creates_then_updates_and_maps_its_full_url(
    fhir: httpx.Client,
) -> None:
    value, urn = uuid.uuid4().hex, f"urn:uuid:{uuid.uuid4()}"

    def transaction(gender: str) -> list[dict[str, Any]]:
        bundle = _bundle("transaction",
            {"fullUrl": urn, "resource": _patient(value, gender),
             "request": {"method": "PUT", "url": f"Patient?identifier=urn:bundle-cond|{value}"}},
            {"resource": _observation(urn), "request": {"method": "POST", "url": "Observation"}},
        )  # fmt: skip
        response = fhir.post("", json=bundle)
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()["entry"]
        return entries

    first = transaction("female")
    assert first[0]["response"]["status"] == "201 Created"
    pid = first[0]["resource"]["id"]
    assert first[1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    second = transaction("male")
    assert second[0]["response"]["status"] == "200 OK"
    assert (second[0]["resource"]["id"], second[0]["resource"]["meta"]["versionId"]) == (pid, "2")
    assert second[1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert [p["gender"] for p in _matching(fhir, value)] == ["male"]


def test_transaction_conditional_delete_and_update_without_full_url(fhir: httpx.Client) -> None:
    gone, kept = uuid.uuid4().hex, uuid.uuid4().hex
    for value in (gone, kept):
        assert fhir.post("/Patient", json=_patient(value)).status_code == 201
    bundle = _bundle("transaction",
        {"request": {"method": "DELETE", "url": f"Patient?identifier=urn:bundle-cond|{gone}"}},
        {"resource": _patient(kept, "other"),
         "request": {"method": "PUT", "url": f"Patient?identifier=urn:bundle-cond|{kept}"}},
    )  # fmt: skip
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["204 No Content", "200 OK"]
    assert _matching(fhir, gone) == []
    assert [p["gender"] for p in _matching(fhir, kept)] == ["other"]


def test_transaction_conditional_update_with_several_matches_writes_nothing(
    fhir: httpx.Client,
) -> None:
    twice, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    for _ in range(2):
        assert fhir.post("/Patient", json=_patient(twice)).status_code == 201
    for url_entry in (
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": _patient(twice, "male"),
         "request": {"method": "PUT", "url": f"Patient?identifier=urn:bundle-cond|{twice}"}},
        {"resource": _patient(twice, "male"),
         "request": {"method": "PUT", "url": f"Patient?identifier=urn:bundle-cond|{twice}"}},
        {"request": {"method": "DELETE", "url": f"Patient?identifier=urn:bundle-cond|{twice}"}},
    ):  # fmt: skip
        bundle = _bundle("transaction", url_entry,
            {"resource": _patient(fresh), "request": {"method": "POST", "url": "Patient"}})  # fmt: skip
        response = fhir.post("", json=bundle)
        assert response.status_code == 412, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    assert _matching(fhir, fresh) == []
    assert {p["meta"]["versionId"] for p in _matching(fhir, twice)} == {"1"}


def test_transaction_conditional_update_stays_in_the_token_compartment(
    live_service: Service, fhir: httpx.Client
) -> None:
    mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    my_id = fhir.post("/Patient", json=_patient(mine)).json()["id"]
    fhir.post("/Patient", json=_patient(theirs))
    bundle = _bundle("transaction",
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": _patient(theirs, "male"),
         "request": {"method": "PUT", "url": f"Patient?identifier=urn:bundle-cond|{theirs}"}})  # fmt: skip
    with client_for(live_service, "patient/Patient.cruds", patient=my_id) as own:
        # Their record is invisible: no match, and a new Patient is not this token's: refused.
        assert own.post("", json=bundle).status_code == 403
    assert [p["meta"]["versionId"] for p in _matching(fhir, theirs)] == ["1"]


def test_a_stale_if_match_fails_the_whole_transaction(fhir: httpx.Client) -> None:
    value, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    pid = fhir.post("/Patient", json=_patient(value)).json()["id"]
    bundle = _bundle("transaction",
        {"resource": {**_patient(value, "male"), "id": pid},
         "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"7"'}},
        {"resource": _patient(fresh), "request": {"method": "POST", "url": "Patient"}})  # fmt: skip
    assert fhir.post("", json=bundle).status_code == 412
    assert _matching(fhir, fresh) == []
    assert fhir.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_a_malformed_entry_fails_alone_in_a_batch(
    fhir: httpx.Client, module_database: Database
) -> None:
    value = uuid.uuid4().hex
    bundle = _bundle("batch",
        {"resource": _patient(value), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/a/b/c"}},
        {"request": {"method": "GET", "url": "NoSuchType/1"}},
        {"request": {"method": "PUT", "url": "Patient"}, "resource": _patient(value)},
        {"request": {"method": "DELETE", "url": f"Patient?identifier=urn:bundle-cond|{value}x"}},
        {"request": {"method": "GET", "url": f"Patient?identifier=urn:bundle-cond|{value}"}},
    )  # fmt: skip
    response = fhir.post("", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "201 Created", "400", "404", "400", "204 No Content", "200 OK"]  # fmt: skip
    assert "Bundle.entry[1]" in entries[1]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert len(entries[5]["resource"]["entry"]) == 1
    with psycopg.connect(module_database.owner_url) as conn:
        row = conn.execute("SELECT outcome, content::jsonb->>'detail' FROM audit_log "
                           "WHERE interaction = 'batch' ORDER BY recorded_at DESC LIMIT 1").fetchone()  # fmt: skip
    assert row == ("failed", "3 of 6 entries malformed")
    in_transaction = fhir.post("", json={**bundle, "type": "transaction"})
    assert in_transaction.status_code == 400
    assert len(_matching(fhir, value)) == 1


def test_operations_are_answered_inside_batch_entries(
    live_service: Service, fhir: httpx.Client
) -> None:
    pid = fhir.post("/Patient", json=_patient(uuid.uuid4().hex)).json()["id"]
    other = fhir.post("/Patient", json=_patient(uuid.uuid4().hex)).json()["id"]
    vital = {**_observation(f"Patient/{pid}"), "effectiveDateTime": "2026-01-01T00:00:00Z",
             "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
             "valueQuantity": {"value": 60, "unit": "/min", "system": "http://unitsofmeasure.org",
                               "code": "/min"}}  # fmt: skip
    oid = fhir.post("/Observation", json=vital).json()["id"]
    bundle = _bundle("batch",
        {"request": {"method": "GET", "url": f"Observation/$lastn?patient={pid}"}},
        {"request": {"method": "GET", "url": f"Patient/{pid}/$everything"}},
        {"request": {"method": "GET", "url": "Observation/$stats"}},
        {"request": {"method": "GET", "url": "Patient/$everything"}},
        {"request": {"method": "GET", "url": f"Patient/{other}/$everything"}},
    )  # fmt: skip
    with client_for(live_service, "patient/*.rs", patient=pid) as own:
        response = own.post("", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["200 OK", "200 OK", "400", "400", "404"]
    assert [e["resource"]["id"] for e in entries[0]["resource"]["entry"]] == [oid]
    everything = {e["resource"]["id"] for e in entries[1]["resource"]["entry"]}
    assert everything == {pid, oid}
    direct = fhir.get(f"/Observation/$lastn?patient={pid}").json()
    assert entries[0]["resource"]["entry"] == direct["entry"]


def _fhirpath_patch(path: str, code: str) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": path},
        {"name": "value", "valueCode": code}]}]}  # fmt: skip


def _json_patch_binary(operations: list[dict[str, Any]]) -> dict[str, Any]:
    data = base64.b64encode(orjson.dumps(operations)).decode()
    return {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}


def test_patch_entries_in_a_transaction_apply_together_or_not_at_all(fhir: httpx.Client) -> None:
    one, two = (fhir.post("/Patient", json=_patient(uuid.uuid4().hex)).json()["id"]
                for _ in range(2))  # fmt: skip
    good = _bundle("transaction",
        {"resource": _fhirpath_patch("Patient.gender", "male"),
         "request": {"method": "PATCH", "url": f"Patient/{one}", "ifMatch": 'W/"1"'}},
        {"resource": _json_patch_binary([{"op": "replace", "path": "/gender", "value": "other"}]),
         "request": {"method": "PATCH", "url": f"Patient/{two}"}})  # fmt: skip
    response = fhir.post("", json=good)
    assert response.status_code == 200, response.text
    assert [e["resource"]["gender"] for e in response.json()["entry"]] == ["male", "other"]
    bad = _bundle("transaction",
        {"resource": _fhirpath_patch("Patient.gender", "female"),
         "request": {"method": "PATCH", "url": f"Patient/{one}"}},
        {"resource": _fhirpath_patch("Patient.gender", "robot"),
         "request": {"method": "PATCH", "url": f"Patient/{two}"}})  # fmt: skip
    assert fhir.post("", json=bad).status_code == 422
    assert fhir.get(f"/Patient/{one}").json()["gender"] == "male"
    batch = _bundle("batch",
        {"resource": {"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="},
         "request": {"method": "PATCH", "url": f"Patient/{one}"}},
        {"resource": {**_json_patch_binary([]), "data": "!!"},
         "request": {"method": "PATCH", "url": f"Patient/{one}"}},
        {"resource": _fhirpath_patch("Patient.gender", "unknown"),
         "request": {"method": "PATCH", "url": "Patient"}},
        {"resource": _fhirpath_patch("Patient.gender", "unknown"),
         "request": {"method": "PATCH", "url": f"Patient/{one}", "ifMatch": 'W/"1"'}},
        {"resource": _fhirpath_patch("Patient.gender", "unknown"),
         "request": {"method": "PATCH", "url": f"Patient/{two}"}})  # fmt: skip
    statuses = [e["response"]["status"] for e in fhir.post("", json=batch).json()["entry"]]
    assert statuses == ["400", "400", "400", "412", "200 OK"]
    assert fhir.get(f"/Patient/{one}").json()["meta"]["versionId"] == "2"
