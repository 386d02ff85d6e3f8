"""The authorization matrix against a live service: role/scope x resource x interaction x own/other.

Patient P1 (own) and P2 (other), each with one Observation, are created by an administrator. Each
row says what a caller gets; "hidden" means 404 exactly as for a missing record (existence must
not leak); searches must return only what the caller may see, in totals and pages alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.conftest import Service
from tests.security.conftest import mint

ADMIN = "user/Patient.cruds user/Observation.cruds"
GLASS = {"X-Break-Glass-Reason": "unresponsive in the emergency department"}


@dataclass
class World:
    client: httpx.Client
    p1: str
    p2: str
    o1: str
    o2: str
    phi: list[str]  # every identifying value written, for the scans

    def as_(self, scopes: str, patient: str | None = None, **headers: str) -> dict[str, str]:
        token = mint(f"user-{uuid.uuid4().hex[:6]}", scopes, patient=patient)
        return {"Authorization": f"Bearer {token}", **headers}


def _patient(client: httpx.Client, headers: dict[str, str], tag: str) -> tuple[str, list[str]]:
    family, mrn = f"Zq{tag}{uuid.uuid4().hex[:8]}", f"MRN{uuid.uuid4().hex[:10]}"
    body = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ynez"]}],
            "identifier": [{"system": "urn:mrn", "value": mrn}], "birthDate": "1961-07-13"}  # fmt: skip
    response = client.post("/Patient", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"], [family, mrn]


def _observation(client: httpx.Client, headers: dict[str, str], patient: str) -> str:
    body = {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-03-01T10:00:00Z",
            "valueQuantity": {"value": 72, "unit": "/min"}}  # fmt: skip
    response = client.post("/Observation", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def world(live_service: Service) -> Iterator[World]:
    with httpx.Client(base_url=f"{live_service.base_url}/api/fhir", timeout=10) as client:
        admin = {"Authorization": f"Bearer {mint('admin', ADMIN)}"}
        p1, phi1 = _patient(client, admin, "one")
        p2, phi2 = _patient(client, admin, "two")
        o1, o2 = _observation(client, admin, p1), _observation(client, admin, p2)
        yield World(client, p1, p2, o1, o2, [*phi1, *phi2, "1961-07-13"])


def ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if "resource" in e}


# (who, scopes, patient context: "own"/None) -> expected status for reads of own/other records.
READERS = [
    ("clinician", "user/Patient.rs user/Observation.rs", None, 200, 200),
    ("system", "system/*.rs", None, 200, 200),
    ("v1 reader", "user/Patient.read user/Observation.read", None, 200, 200),
    ("patient", "patient/Patient.rs patient/Observation.rs", "own", 200, 404),
    ("patient + user scopes", "user/Patient.rs user/Observation.rs patient/Observation.rs",
     "own", 200, 404),
    ("writer only", "user/Patient.cud user/Observation.cud", None, 403, 403),
    ("no scopes", "openid fhirUser", None, 403, 403),
    ("auditor", "user/AuditEvent.rs", None, 403, 403),
]  # fmt: skip


@pytest.mark.parametrize(("who", "scopes", "context", "own", "other"), READERS,
                         ids=[r[0] for r in READERS])  # fmt: skip
@pytest.mark.parametrize("kind", ["Patient", "Observation"])
@pytest.mark.parametrize("interaction", ["read", "vread", "history"])
def test_instance_reads(world: World, who: str, scopes: str, context: str | None, own: int,
                        other: int, kind: str, interaction: str) -> None:  # fmt: skip
    headers = world.as_(scopes, world.p1 if context else None)
    for target, expected in (((world.p1, world.o1), own), ((world.p2, world.o2), other)):
        rid = target[0] if kind == "Patient" else target[1]
        path = {"read": f"/{kind}/{rid}", "vread": f"/{kind}/{rid}/_history/1",
                "history": f"/{kind}/{rid}/_history"}[interaction]  # fmt: skip
        response = world.client.get(path, headers=headers)
        assert response.status_code == expected, (path, response.text)
        assert response.json()["resourceType"] != "OperationOutcome" or expected != 200


def test_hidden_and_missing_look_the_same(world: World) -> None:
    headers = world.as_("patient/Patient.rs", world.p1)
    hidden = world.client.get(f"/Patient/{world.p2}", headers=headers)
    missing_id = str(uuid.uuid4())
    missing = world.client.get(f"/Patient/{missing_id}", headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert hidden.json()["issue"][0]["diagnostics"].replace(world.p2, "X") == (
        missing.json()["issue"][0]["diagnostics"].replace(missing_id, "X")
    )


SEARCHES = [
    ("/Patient", {}, "patients"),
    ("/Patient", {"_id": "{p2}"}, "patients"),
    ("/Patient", {"family": "{family2}"}, "patients"),
    ("/Observation", {}, "observations"),
    ("/Observation", {"patient": "{p2}"}, "observations"),
    ("/Observation", {"subject": "Patient/{p2}"}, "observations"),
    ("/Observation", {"code": "http://loinc.org|8867-4"}, "observations"),
    ("/Observation/$lastn", {"patient": "{p2}"}, "observations"),
    ("/Observation/$lastn", {"patient": "{p1}"}, "observations"),
]


def _fill(world: World, params: dict[str, str]) -> dict[str, str]:
    values = {"p1": world.p1, "p2": world.p2, "family2": world.phi[2]}
    return {k: v.format(**values) for k, v in params.items()}


@pytest.mark.parametrize(("path", "params", "what"), SEARCHES)
def test_patient_searches_never_reach_other_patients(world: World, path: str,
                                                     params: dict[str, str], what: str) -> None:  # fmt: skip
    headers = world.as_("patient/Patient.rs patient/Observation.rs", world.p1)
    response = world.client.get(path, params=_fill(world, params), headers=headers)
    assert response.status_code == 200, response.text
    bundle = response.json()
    allowed = {world.p1} if what == "patients" else {world.o1}
    assert ids(bundle) <= allowed
    assert world.p2 not in response.text
    assert world.o2 not in response.text
    if "total" in bundle:
        assert bundle["total"] == len(ids(bundle))


def test_clinician_search_sees_both(world: World) -> None:
    headers = world.as_("user/Observation.rs")
    response = world.client.get("/Observation", params={"code": "http://loinc.org|8867-4"},
                                headers=headers)  # fmt: skip
    assert {world.o1, world.o2} <= ids(response.json())


def test_scope_without_search_is_forbidden(world: World) -> None:
    headers = world.as_("user/Patient.r")
    assert world.client.get(f"/Patient/{world.p1}", headers=headers).status_code == 200
    assert world.client.get("/Patient", headers=headers).status_code == 403


def _observation_body(patient: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2024-03-02T10:00:00Z",
            "valueQuantity": {"value": 80, "unit": "/min"}}  # fmt: skip


@pytest.mark.parametrize(
    ("scopes", "context", "own", "other"),
    [
        ("user/Observation.cruds", None, 201, 201),
        ("user/Observation.rs", None, 403, 403),
        ("patient/Observation.cruds", "own", 201, 403),
        ("patient/Observation.rs", "own", 403, 403),
    ],
)
def test_create(world: World, scopes: str, context: str | None, own: int, other: int) -> None:
    headers = world.as_(scopes, world.p1 if context else None)
    for patient, expected in ((world.p1, own), (world.p2, other)):
        response = world.client.post("/Observation", json=_observation_body(patient),
                                     headers=headers)  # fmt: skip
        assert response.status_code == expected, response.text


def test_update_and_delete_need_their_letters(world: World) -> None:
    admin = world.as_(ADMIN)
    oid = world.client.post("/Observation", json=_observation_body(world.p1), headers=admin)
    rid = oid.json()["id"]
    body = {**_observation_body(world.p1), "id": rid}
    reader = world.as_("user/Observation.rs")
    assert world.client.put(f"/Observation/{rid}", json=body, headers=reader).status_code == 403
    assert world.client.delete(f"/Observation/{rid}", headers=reader).status_code == 403
    other_patient = world.as_("patient/Observation.cruds", world.p2)
    put = world.client.put(f"/Observation/{rid}", json=body, headers=other_patient)
    # Writing content about another patient is refused whether or not the id exists (403)...
    assert put.status_code == 403, put.text
    # ...and another patient's existing record, rewritten as one's own, looks missing (404).
    own_body = {**_observation_body(world.p2), "id": rid}
    hijack = world.client.put(f"/Observation/{rid}", json=own_body, headers=other_patient)
    assert hijack.status_code == 404, hijack.text
    assert world.client.delete(f"/Observation/{rid}", headers=other_patient).status_code == 404
    updater = world.as_("user/Observation.u")
    assert world.client.put(f"/Observation/{rid}", json=body, headers=updater).status_code == 200


def _batch(*urls: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch",
            "entry": [{"request": {"method": "GET", "url": u}} for u in urls]}  # fmt: skip


def test_batch_entries_are_confined(world: World) -> None:
    headers = world.as_("patient/Patient.rs patient/Observation.rs", world.p1)
    bundle = _batch(f"Patient/{world.p1}", f"Patient/{world.p2}", f"Observation/{world.o2}",
                    f"Observation?patient={world.p2}")  # fmt: skip
    response = world.client.post("/", json=bundle, headers=headers)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0].startswith("200")
    assert statuses[1].startswith("404")
    assert statuses[2].startswith("404")
    assert world.p2 not in response.text.replace(f"Patient/{world.p2}", "")  # only echoed URLs
    assert world.o2 not in response.text.replace(f"Observation/{world.o2}", "")


def test_transaction_outside_the_compartment_is_refused_whole(world: World) -> None:
    headers = world.as_("patient/Observation.cruds", world.p1)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Observation"}, "resource": _observation_body(p)}
        for p in (world.p1, world.p2)]}  # fmt: skip
    before = world.client.get("/Observation", params={"patient": world.p1}, headers=headers)
    response = world.client.post("/", json=bundle, headers=headers)
    assert response.status_code == 403, response.text
    after = world.client.get("/Observation", params={"patient": world.p1}, headers=headers)
    assert ids(after.json()) == ids(before.json())


def test_break_glass_reaches_another_patient_and_is_flagged(world: World) -> None:
    scopes = "patient/Patient.rs patient/Observation.rs break-glass"
    plain = world.client.get(f"/Patient/{world.p2}", headers=world.as_(scopes, world.p1))
    assert plain.status_code == 404
    empty = world.client.get(f"/Patient/{world.p2}", headers=world.as_(
        scopes, world.p1, **{"X-Break-Glass-Reason": ""}))  # fmt: skip
    assert empty.status_code == 403
    granted = world.client.get(f"/Patient/{world.p2}", headers=world.as_(scopes, world.p1, **GLASS))
    assert granted.status_code == 200
    searched = world.client.get("/Observation", params={"patient": world.p2},
                                headers=world.as_(scopes, world.p1, **GLASS))  # fmt: skip
    assert world.o2 in ids(searched.json())
    write = world.client.post("/Observation", json=_observation_body(world.p2),
                              headers=world.as_(scopes, world.p1, **GLASS))  # fmt: skip
    assert write.status_code == 403
    unpermitted = world.client.get(f"/Patient/{world.p2}", headers=world.as_(
        "patient/Patient.rs", world.p1, **GLASS))  # fmt: skip
    assert unpermitted.status_code == 403


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [("user/AuditEvent.rs", 200), ("system/AuditEvent.read", 200), (ADMIN, 403),
     ("system/*.cruds", 403), ("patient/AuditEvent.rs", 403)],
)  # fmt: skip
def test_only_auditors_read_the_trail(world: World, scopes: str, expected: int) -> None:
    headers = world.as_(scopes, world.p1 if scopes.startswith("patient/") else None)
    response = world.client.get("/AuditEvent", params={"_count": "5"}, headers=headers)
    assert response.status_code == expected, response.text
