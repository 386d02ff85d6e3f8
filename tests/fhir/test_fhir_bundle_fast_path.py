"""Transaction Bundles of plain creates (one executemany + one batched audit append) store and
answer exactly what one create per entry does, keep all-or-nothing, and mix with other entries."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from tests.conftest import TEST_ENCRYPTION_KEY, Database, Service
from tests.fhir.conftest import client_for

from healthstack.core.crypto import Keyring, aad
from healthstack.security.verify import verify

KEYRING = Keyring(bytes.fromhex(TEST_ENCRYPTION_KEY))
VITALS = "http://terminology.hl7.org/CodeSystem/observation-category"
RESOURCE_COLUMNS = ("resource_type, version, deleted, patient_id, code, codes, categories, "
                    "effective_start, effective_end, gender, key_id")  # fmt: skip
# What differs between two creates of the same resource: ids, times and the request.
VARYING = ("resource_id", "time", "request_id")


def _patient(mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "name": [{"family": "Fastpath", "given": ["Bundle"]}],
        "gender": "female",
        "birthDate": "1970-02-03",
    }


def _vital(patient: str, i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": VITALS, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": f"2024-05-01T{i:02d}:00:00Z",
        "valueQuantity": {
            "value": 60 + i,
            "unit": "/min",
            "code": "/min",
            "system": "http://unitsofmeasure.org",
        },
    }


def _post(resource: dict[str, Any], **request: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource}
    entry["request"] = {"method": "POST", "url": resource["resourceType"], **request}
    return entry


def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _normalized(body: bytes | dict[str, Any]) -> dict[str, Any]:
    resource = orjson.loads(body) if isinstance(body, bytes) else dict(body)
    resource.pop("id")
    meta = dict(resource.pop("meta"))
    assert meta.pop("versionId") == "1"
    assert meta.pop("lastUpdated")
    return {**resource, "meta": meta}


def _stored(db: Database, rtype: str, rid: str) -> dict[str, Any]:
    """Everything stored for one resource, with ids and times left out."""
    with psycopg.connect(db.owner_url) as conn:
        row = conn.execute(f"SELECT {RESOURCE_COLUMNS}, body FROM fhir_resource "
                           "WHERE resource_type = %s AND id = %s", (rtype, rid)).fetchone()  # fmt: skip
        assert row is not None
        history = conn.execute("SELECT version, deleted, key_id, body FROM fhir_resource_version "
                               "WHERE resource_type = %s AND id = %s", (rtype, rid)).fetchall()  # fmt: skip
        tokens = conn.execute("SELECT kind, digest FROM fhir_token WHERE resource_type = %s "
                              "AND id = %s ORDER BY 1, 2", (rtype, rid)).fetchall()  # fmt: skip
        vitals = conn.execute("SELECT patient_id, code, effective, value, unit FROM fhir_vital "
                              "WHERE observation_id = %s", (rid,)).fetchall()  # fmt: skip
        audits = conn.execute("SELECT content FROM audit_log WHERE resource_type = %s "
                              "AND resource_id = %s", (rtype, rid)).fetchall()  # fmt: skip
    plain = KEYRING.decrypt(row[-2], bytes(row[-1]), aad(rtype, rid, 1))
    assert [(v, d, k) for v, d, k, _ in history] == [(1, False, row[-2])]
    assert KEYRING.decrypt(history[0][2], bytes(history[0][3]), aad(rtype, rid, 1)) == plain
    records = [{k: v for k, v in orjson.loads(a[0]).items() if k not in VARYING} for a in audits]
    # A Patient is its own compartment: patient_id is its id.
    columns = tuple("<self>" if value == rid else value for value in row[:-1])
    return {
        "row": columns,
        "body": _normalized(plain),
        "tokens": tokens,
        "vitals": vitals,
        "audit": records,
    }


def _created(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entry"]
    return entries


@pytest.fixture(scope="module")
def fhir(live_service: Service) -> Any:
    with client_for(live_service) as client:
        yield client


def test_bundle_stores_and_answers_what_single_creates_do(
    fhir: httpx.Client, module_database: Database
) -> None:
    resources = [_patient("MRN-FAST-1"), *(_vital("pat-fast-1", i) for i in range(12))]
    singles = [fhir.post(f"/{r['resourceType']}", json=r) for r in resources]
    assert [s.status_code for s in singles] == [201] * len(resources)
    bundle = _created(fhir.post("", json=_transaction(*(_post(r) for r in resources))))
    base = str(fhir.base_url).rstrip("/")
    for resource, single, entry in zip(resources, singles, bundle, strict=True):
        rtype, rid = resource["resourceType"], entry["resource"]["id"]
        assert entry["fullUrl"] == f"{base}/{rtype}/{rid}"
        assert entry["response"]["status"] == "201 Created"
        assert entry["response"]["etag"] == single.headers["etag"] == 'W/"1"'
        assert entry["response"]["location"] == f"{rtype}/{rid}/_history/1"
        assert entry["response"]["lastModified"] == entry["resource"]["meta"]["lastUpdated"]
        assert _normalized(entry["resource"]) == _normalized(single.json())
        fast = _stored(module_database, rtype, rid)
        slow = _stored(module_database, rtype, single.json()["id"])
        assert fast == slow
        assert fast["audit"] == [{"interaction": "create", "outcome": "success",
                                  "subject": "tester", "resource_type": rtype, "version": 1,
                                  "source_ip": "127.0.0.1"}]  # fmt: skip
    assert verify(module_database.owner_url).intact


def _audit_of(db: Database, request_id: str) -> list[tuple[int, int, str, str | None]]:
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute(
            "SELECT chain_id, seq, interaction, resource_id FROM audit_log "
            "WHERE request_id = %s ORDER BY chain_id, seq",
            (request_id,),
        ).fetchall()
    return [(c, s, i, r) for c, s, i, r in rows]


def test_batched_records_are_one_chained_run_in_entry_order(
    fhir: httpx.Client, module_database: Database
) -> None:
    request_id = uuid.uuid4().hex
    entries = _created(
        fhir.post(
            "",
            json=_transaction(*(_post(_vital("pat-fast-2", i)) for i in range(20))),
            headers={"X-Request-Id": request_id},
        )
    )
    rows = _audit_of(module_database, request_id)
    ids = [e["resource"]["id"] for e in entries]
    assert [(i, r) for _, _, i, r in rows] == [
        *(("create", rid) for rid in ids),
        ("transaction", None),
    ]
    assert len({c for c, _, _, _ in rows}) == 1  # one chain (one connection, one transaction)
    seqs = [s for _, s, _, _ in rows]
    assert seqs == list(range(seqs[0], seqs[0] + 21))


def test_mixed_bundle_keeps_order_conditional_create_and_references(
    fhir: httpx.Client, module_database: Database
) -> None:
    existing = fhir.post("/Patient", json=_patient("MRN-FAST-3")).json()
    doomed = fhir.post("/Observation", json=_vital(existing["id"], 0)).json()["id"]
    urn = f"urn:uuid:{uuid.uuid4()}"
    new_obs = _vital("x", 1) | {"subject": {"reference": urn}}
    request_id = uuid.uuid4().hex
    bundle = _transaction(
        {"request": {"method": "GET", "url": f"Observation/{doomed}"}},
        _post(new_obs),
        {"request": {"method": "DELETE", "url": f"Observation/{doomed}"}},
        {"fullUrl": urn, **_post(_patient("MRN-FAST-4"))},
        _post(_patient("MRN-FAST-3"), ifNoneExist="identifier=urn:mrn|MRN-FAST-3"),
        {"resource": existing | {"active": True}, "request": {"method": "PUT",
                                                             "url": f"Patient/{existing['id']}"}},
    )  # fmt: skip
    entries = fhir.post("", json=bundle)
    assert entries.status_code == 410  # GET runs last, after the DELETE: all rolled back
    assert fhir.get(f"/Observation/{doomed}").status_code == 200
    bundle["entry"] = bundle["entry"][1:]
    got = _created(fhir.post("", json=bundle, headers={"X-Request-Id": request_id}))
    statuses = [e["response"]["status"] for e in got]
    assert statuses == ["201 Created", "204 No Content", "201 Created", "200 OK", "200 OK"]
    new_patient = got[2]["resource"]["id"]
    assert got[0]["resource"]["subject"]["reference"] == f"Patient/{new_patient}"
    assert got[3]["resource"]["id"] == existing["id"]
    assert got[4]["response"]["etag"] == 'W/"2"'
    interactions = [i for _, _, i, _ in _audit_of(module_database, request_id)]
    # The conditional create's match came first (ids are assigned up front), audited as the
    # search and read it is; the DELETE ran before the creates; the plain creates (POST
    # Observation, POST Patient) were stored together.
    assert interactions == ["search", "read", "delete", "create", "create", "update",
                            "transaction"]  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        (_vital("pat-fast-5", 3) | {"status": "not-a-status"}, 422),
        (_vital("pat-fast-5", 3) | {"subject": {"reference": "urn:uuid:nowhere"}}, 400),
    ],
)
def test_one_bad_entry_rolls_back_every_plain_create(
    fhir: httpx.Client, module_database: Database, bad: dict[str, Any], status: int
) -> None:
    request_id = uuid.uuid4().hex
    entries = [_post(_vital("pat-fast-5", i)) for i in range(6)]
    entries[3] = _post(bad)
    response = fhir.post("", json=_transaction(*entries), headers={"X-Request-Id": request_id})
    assert response.status_code == status, response.text
    if status == 422:  # (urn references are resolved for the whole Bundle, before any entry)
        assert response.json()["issue"][0]["diagnostics"].startswith("Bundle.entry[3]: ")
    assert fhir.get("/Observation?patient=pat-fast-5").json().get("entry") is None
    # Only the failure, audited on its own connection: the entries' records rolled back.
    assert [i for _, _, i, _ in _audit_of(module_database, request_id)] == ["batch"]


def test_compartment_and_scope_are_checked_per_entry(live_service: Service) -> None:
    entries = [_post(_vital("pat-fast-6", i)) for i in range(3)]
    entries.append(_post(_vital("someone-else", 9)))
    with client_for(live_service, "patient/Observation.cruds", patient="pat-fast-6") as own:
        response = own.post("", json=_transaction(*entries))
        assert response.status_code == 403, response.text
        assert "Bundle.entry[3]" in response.json()["issue"][0]["diagnostics"]
        assert own.get("/Observation?patient=pat-fast-6").json().get("entry") is None
        allowed = _created(own.post("", json=_transaction(*entries[:3])))
        assert len(allowed) == 3
    with client_for(live_service, "user/Observation.rs") as reader:
        assert reader.post("", json=_transaction(*entries[:3])).status_code == 403
