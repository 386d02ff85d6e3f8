"""FHIRPath Patch (issue 15, item 1): a Parameters body located with FHIRPath, stored as an update."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from tests.fhir.conftest import client_for

from healthstack.fhir import fhirpath_patch


def op(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    out: list[dict[str, Any]] = [{"name": "type", "valueCode": kind},
                                 {"name": "path", "valueString": path}]  # fmt: skip
    for name, value in parts.items():
        out.append({"name": name, **value} if isinstance(value, dict) else
                   {"name": name, "valueInteger": value} if isinstance(value, int) else
                   {"name": name, "valueString": value})  # fmt: skip
    return {"name": "operation", "part": out}


def params(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def _patient(fhir: httpx.Client) -> dict[str, Any]:
    body = {"resourceType": "Patient", "gender": "female", "birthDate": "1970-01-01",
            "identifier": [{"system": "urn:a", "value": uuid.uuid4().hex},
                           {"system": "urn:b", "value": "b"}],
            "name": [{"family": "One", "given": ["Ann", "Bea"]},
                     {"use": "official", "family": "Two"}]}  # fmt: skip
    response = fhir.post("/Patient", json=body)
    assert response.status_code == 201
    created: dict[str, Any] = response.json()
    return created


def test_every_fhirpath_patch_operation_applies_and_versions(fhir: httpx.Client) -> None:
    patient = _patient(fhir)
    path = f"/Patient/{patient['id']}"
    body = params(
        op("replace", "Patient.gender", value={"valueCode": "other"}),
        op("delete", "Patient.birthDate"),
        op("delete", "Patient.name.where(use='official')"),
        op("add", "Patient.name[0]", name="prefix", value={"valueString": "Dr"}),
        op("add", "Patient", name="active", value={"valueBoolean": True}),
        op("insert", "Patient.identifier", index=0,
           value={"valueIdentifier": {"system": "urn:c", "value": "c"}}),
        op("move", "Patient.identifier", source=2, destination=0),
        op("replace", "Patient.name.given[1]", value={"valueString": "Cy"}),
        op("delete", "Patient.telecom"),  # selects nothing: not an error
        op("delete", "Patient.extension('urn:none')"),  # extension(url) is allowed
        op("add", "Patient", name="contact",
           value={"part": [{"name": "gender", "valueCode": "male"},
                           {"name": "name", "valueHumanName": {"family": "Kin"}}]}),
    )  # fmt: skip
    response = fhir.patch(path, json=body, headers={"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["meta"]["versionId"] == "2"
    assert (got["gender"], got["active"], "birthDate" in got) == ("other", True, False)
    assert got["name"] == [{"family": "One", "given": ["Ann", "Cy"], "prefix": ["Dr"]}]
    assert [i["system"] for i in got["identifier"]] == ["urn:b", "urn:c", "urn:a"]
    assert got["contact"] == [{"gender": "male", "name": {"family": "Kin"}}]
    assert fhir.get(path).json() == got
    stale = fhir.patch(path, json=params(op("delete", "Patient.active")),
                       headers={"If-Match": 'W/"1"'})  # fmt: skip
    assert stale.status_code == 412


def test_choice_elements_are_patched_by_their_element_name(fhir: httpx.Client) -> None:
    patient = _patient(fhir)
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": f"Patient/{patient['id']}"},
           "valueQuantity": {"value": 3, "unit": "mg"}}  # fmt: skip
    created = fhir.post("/Observation", json=obs).json()
    path = f"/Observation/{created['id']}"
    changed = fhir.patch(path, json=params(op("replace", "Observation.value",
                                              value={"valueString": "three"})))  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert (changed.json()["valueString"], "valueQuantity" in changed.json()) == ("three", False)
    added = fhir.patch(path, json=params(op("delete", "Observation.value"),
                                         op("add", "Observation", name="value",
                                            value={"valueBoolean": True})))  # fmt: skip
    assert added.status_code == 200, added.text
    assert added.json()["valueBoolean"] is True


@pytest.mark.parametrize(("body", "status"), [
    (params(op("replace", "Patient.gender", value={"valueCode": "robot"})), 422),  # invalid
    (params(op("add", "Patient", name="birthDate", value={"valueDate": "1980-01-01"})), 400),
    (params(op("replace", "Patient.identifier", value={"valueString": "x"})), 400),  # two match
    (params(op("delete", "Patient.name")), 400),  # two names: at most one
    (params(op("delete", "Patient")), 400),
    (params(op("delete", "Patient.name.given.first()")), 400),  # primitive through a function
    (params(op("delete", "Patient.name.nosuchfunction()")), 400),
    (params(op("insert", "Patient.gender", index=0, value={"valueCode": "male"})), 400),
    (params(op("insert", "Patient.identifier", index=9, value={"valueString": "x"})), 400),
    (params(op("move", "Patient.identifier", source=0, destination=5)), 400),
    (params(op("explode", "Patient.gender")), 400),
    (params(op("replace", "Patient.gender")), 400),  # no value
    (params(op("add", "Patient", value={"valueBoolean": True})), 400),  # no name
    (params(op("delete", "Patient.gender\x00")), 400),
    (params(op("delete", "Patient." + "a" * 2000)), 400),
    (params(op("delete", "Patient.descendants().descendants().descendants().first()")), 400),
    (params(op("delete", "Patient.repeat(children()).first()")), 400),
    # A client's regular expression: catastrophic backtracking would hold the event loop.
    (params(op("delete", "Patient.name.where('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'"
                         ".matches('(a+)+$')).family")), 400),
    (params(op("delete", "Patient.name.where(family.replaceMatches('(a+)+$', '') = '').family")),
     400),
    (params(op("delete", "Patient.name.where('a'.`matches`('a')).family")), 400),
    (params(op("delete", "%resource.gender")), 400),
    (params(op("delete", "Patient.name.combine(Patient.name).first()")), 400),
    (params(op("replace", "Patient.gender", value={"valueCode": "male"}),
            op("delete", "Patient.name")), 400),  # a later failure undoes the earlier ones
    (params(), 400),
    ({"resourceType": "Patient"}, 400),
    (params(*[op("delete", "Patient.telecom")] * 101), 400),
    (params({"name": "operation", "part": [{"name": "type", "valueCode": "delete"},
                                           {"name": "type", "valueCode": "delete"}]}), 400),
    (params(op("add", "Patient", name="resourceType", value={"valueString": "x"})), 400),
])  # fmt: skip
def test_bad_fhirpath_patches_change_nothing(
    fhir: httpx.Client, body: dict[str, Any], status: int
) -> None:
    patient = _patient(fhir)
    path = f"/Patient/{patient['id']}"
    response = fhir.patch(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert fhir.get(path).json() == patient


def test_fhirpath_patch_needs_read_and_update_and_stays_in_the_compartment(
    live_service: object, fhir: httpx.Client
) -> None:
    mine, theirs = _patient(fhir), _patient(fhir)
    body = params(op("replace", "Patient.gender", value={"valueCode": "male"}))
    with client_for(live_service, "user/Patient.u") as writer:  # type: ignore[arg-type]
        assert writer.patch(f"/Patient/{mine['id']}", json=body).status_code == 403
    with client_for(live_service, "patient/Patient.ru", patient=str(mine["id"])) as own:  # type: ignore[arg-type]
        assert own.patch(f"/Patient/{theirs['id']}", json=body).status_code == 404
        assert own.patch(f"/Patient/{mine['id']}", json=body).status_code == 200
    assert fhir.get(f"/Patient/{theirs['id']}").json() == theirs
    fhir.delete(f"/Patient/{theirs['id']}")
    assert fhir.patch(f"/Patient/{theirs['id']}", json=body).status_code == 410
    assert fhir.patch(f"/Patient/{mine['id']}", content=b"x",
                      headers={"Content-Type": "text/plain"}).status_code == 415  # fmt: skip


def test_parse_refuses_a_value_with_two_forms() -> None:
    raw = params({"name": "operation", "part": [
        {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
        {"name": "name", "valueString": "active"},
        {"name": "value", "valueBoolean": True, "resource": {"resourceType": "Patient"}}]})  # fmt: skip
    with pytest.raises(fhirpath_patch.FhirError) as caught:
        fhirpath_patch.parse(raw)
    assert caught.value.status == 400
