"""Contained resources (issue 15, item 8): accepted, stored encrypted with their container,
returned with it; searching them on their own is refused with a clear OperationOutcome."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Database, Service
from tests.fhir.conftest import client_for

from healthstack.service.embedded_pg import bin_dir


def _container(marker: str, subject: str = "#p1") -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "contained"},
            "contained": [{"resourceType": "Patient", "id": "p1",
                           "name": [{"family": f"Family{marker}"}]},
                          {"resourceType": "Practitioner", "id": "pr1",
                           "name": [{"family": f"Doctor{marker}"}]}],
            "subject": {"reference": subject}, "performer": [{"reference": "#pr1"}]}  # fmt: skip


def test_contained_resources_are_stored_encrypted_and_returned_with_their_container(
    fhir: httpx.Client, module_database: Database, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    body = _container(marker)
    created = fhir.post("/Observation", json=body)
    assert created.status_code == 201, created.text
    oid = created.json()["id"]
    read = fhir.get(f"/Observation/{oid}").json()
    assert read["contained"] == body["contained"]
    found = fhir.get("/Observation", params={"_id": oid, "_contained": "false",
                                             "_containedType": "container"}).json()  # fmt: skip
    assert found["entry"][0]["resource"]["contained"] == body["contained"]
    dump = tmp_path / "dump.sql"
    subprocess.run([str(bin_dir() / "pg_dump"), "--no-owner", "-f", str(dump), "-d",
                    module_database.owner_url], check=True, capture_output=True,
                   env={**os.environ}, timeout=120)  # fmt: skip
    assert marker not in dump.read_text(errors="replace")


@pytest.mark.parametrize(("params", "code"), [
    ({"_contained": "true"}, "not-supported"),
    ({"_contained": "both"}, "not-supported"),
    ({"_containedType": "contained"}, "not-supported"),
    ({"_contained": "maybe"}, "invalid"),
])  # fmt: skip
def test_searching_contained_resources_on_their_own_is_refused(
    fhir: httpx.Client, params: dict[str, str], code: str
) -> None:
    response = fhir.get("/Observation", params={"code:text": "contained", **params})
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert (outcome["resourceType"], outcome["issue"][0]["code"]) == ("OperationOutcome", code)


def test_a_contained_subject_does_not_take_a_write_out_of_the_token_compartment(
    live_service: Service, fhir: httpx.Client
) -> None:
    mine = fhir.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    with client_for(live_service, "patient/*.cruds", patient=mine) as own:
        assert own.post("/Observation", json=_container("x")).status_code == 403
        inside = own.post("/Observation", json=_container("y", f"Patient/{mine}"))
        assert inside.status_code == 201, inside.text
