"""Chains and ``_has`` are searches of the type they look into (docs/security.md, "Chains and
_has"): they need that type's search permission without a query, and look only at the records a
search of that type by the same caller could see. Without this, a chain answers yes/no questions
about records the caller's scopes or compartment hide.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import Database, Service
from tests.security.conftest import mint

LOINC = "http://loinc.org"
CAT = "category=http://terminology.hl7.org/CodeSystem/observation-category"


class Ward:
    """Two patients; each has a lab Observation performed by a practitioner of their own."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {mint('admin', 'user/*.cruds')}"}
        self.code = uuid.uuid4().hex[:10]  # a LOINC-shaped code only these records carry
        self.family = f"Zed{uuid.uuid4().hex[:8]}"
        self.own, self.other = self.post("Patient", self.patient()), self.post("Patient", {})
        self.own_doctor = self.post("Practitioner", {})
        self.other_doctor = self.post("Practitioner", {})
        self.post("Observation", self.lab(self.own, self.own_doctor, "own-only"))
        self.post("Observation", self.lab(self.other, self.other_doctor, self.code))

    def patient(self) -> dict[str, Any]:
        return {"name": [{"family": self.family}]}

    def lab(self, patient: str, performer: str, code: str) -> dict[str, Any]:
        return {"status": "final", "subject": {"reference": f"Patient/{patient}"},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                          "observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "performer": [{"reference": f"Practitioner/{performer}"}]}  # fmt: skip

    def post(self, rtype: str, body: dict[str, Any]) -> str:
        response = self.client.post(f"/{rtype}", json={"resourceType": rtype, **body},
                                    headers=self.admin)  # fmt: skip
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def search(self, rtype: str, params: dict[str, str], scopes: str,
               patient: str | None = None) -> httpx.Response:  # fmt: skip
        token = mint(f"c-{uuid.uuid4().hex[:6]}", scopes, patient=patient)
        return self.client.get(f"/{rtype}", params=params,
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip


@pytest.fixture(scope="module")
def ward(live_service: Service) -> Iterator[Ward]:
    with httpx.Client(base_url=f"{live_service.base_url}/api/fhir", timeout=30) as client:
        yield Ward(client)


def ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", [])}


def test_has_looks_only_at_the_patient_context_compartment_even_from_an_unconfined_type(
    ward: Ward,
) -> None:
    # Practitioners are in no patient's compartment, so the search itself is unconfined; the
    # Observations _has looks at must still be only the token's own patient's.
    has = "_has:Observation:performer:code"
    found = ids(
        ward.search("Practitioner", {has: f"{LOINC}|{ward.code}"}, "patient/*.rs", ward.own)
    )
    assert found == set()
    found = ids(ward.search("Practitioner", {has: f"{LOINC}|own-only"}, "patient/*.rs", ward.own))
    assert found == {ward.own_doctor}
    # The same question from an unconfined token finds the other patient's practitioner.
    found = ids(ward.search("Practitioner", {has: f"{LOINC}|{ward.code}"}, "user/*.rs"))
    assert found == {ward.other_doctor}


def test_has_needs_search_on_the_inner_type_without_a_query(
    ward: Ward, module_database: Database
) -> None:
    params = {"_has:Observation:subject:code": f"{LOINC}|{ward.code}"}
    # The granular scope even matches the record: its query is still not applied inside _has.
    hidden = f"user/Patient.rs user/Observation.rs?{CAT}|laboratory"
    refused = ward.search("Patient", params, hidden)
    assert refused.status_code == 403, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert ward.code not in refused.text
    assert ward.search("Patient", params, "user/Patient.rs").status_code == 403
    assert ids(ward.search("Patient", params, "user/Patient.rs user/Observation.s")) == {ward.other}
    with psycopg.connect(module_database.owner_url) as conn:
        denied = conn.execute(
            "SELECT count(*) FROM audit_log WHERE interaction = 'search' AND outcome = 'denied' "
            "AND content::text LIKE '%chained or _has%' AND content::text LIKE '%Observation%'"
        ).fetchone()
    assert denied is not None
    assert denied[0] >= 2


def test_chains_need_search_on_the_target_type(ward: Ward) -> None:
    params = {"subject:Patient.family": ward.family}
    assert ward.search("Observation", params, "user/Observation.rs").status_code == 403
    granular = ward.search("Observation", params, "user/Observation.rs user/Patient.rs?gender=x")
    assert granular.status_code == 403
    assert ward.family not in granular.text
    found = ids(ward.search("Observation", params, "user/Observation.rs user/Patient.s"))
    assert len(found) == 1
