"""A FHIR client we did not write (fhirpy) against the live service; outputs checked by fhir.resources."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as ClientOutcome
from tests.conftest import Service
from tests.fhir.conftest import token
from tests.fhir.minimal import minimal

from healthstack.fhir import ops


@pytest.fixture(scope="module")
def client(live_service: Service) -> Iterator[SyncFHIRClient]:
    return SyncFHIRClient(
        f"{live_service.base_url}/api/fhir",
        authorization=f"Bearer {token()}",
        extra_headers={"Content-Type": "application/fhir+json"},
    )


def test_round_trip_with_fhirpy(client: SyncFHIRClient) -> None:
    patient = client.resource(
        "Patient",
        name=[{"family": "Vandermolen", "given": ["Ilse"]}],
        gender="female",
        birthDate="1977-08-09",
        identifier=[{"system": "urn:fhirpy", "value": "FP-1"}],
    )
    patient.save()
    assert patient["id"]
    assert patient["meta"]["versionId"] == "1"
    obs = client.resource(
        "Observation",
        status="final",
        code={"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        subject=patient.to_reference(),
        effectiveDateTime="2024-05-01T12:00:00Z",
        valueQuantity={"value": 37.2, "unit": "Cel"},
    )
    obs.save()
    found = client.resources("Patient").search(family="vandermolen").fetch_all()
    assert [p["id"] for p in found] == [patient["id"]]
    patient["gender"] = "other"
    patient.save()
    assert patient["meta"]["versionId"] == "2"
    fetched = client.reference("Patient", patient["id"]).to_resource()
    assert fetched["gender"] == "other"
    observations = client.resources("Observation").search(patient=patient["id"]).fetch_all()
    assert [o["valueQuantity"]["value"] for o in observations] == [37.2]
    Patient.model_validate(fetched.serialize())
    Observation.model_validate(observations[0].serialize())


def test_fhirpy_sees_errors_as_operation_outcomes(client: SyncFHIRClient) -> None:
    with pytest.raises(ClientOutcome):
        client.resource("Observation", status="bogus", code={"text": "x"}).save()


def _get(service: Service, path: str) -> Any:
    response = httpx.get(
        f"{service.base_url}/api/fhir{path}", headers={"Authorization": f"Bearer {token()}"}
    )
    return response.json()


def test_outputs_validate_as_fhir(live_service: Service, client: SyncFHIRClient) -> None:
    CapabilityStatement.model_validate(_get(live_service, "/metadata"))
    searchset = _get(live_service, "/Patient?family=vandermolen")
    Bundle.model_validate(searchset)
    pid = searchset["entry"][0]["resource"]["id"]
    Bundle.model_validate(_get(live_service, f"/Patient/{pid}/_history"))
    Bundle.model_validate(_get(live_service, f"/Observation/$lastn?patient={pid}"))
    OperationOutcome.model_validate(_get(live_service, "/Patient?nope=1"))
    stats = _get(
        live_service,
        f"/Observation/$stats?patient={pid}&code=http://loinc.org|8310-5&start=2024&end=2025",
    )
    for parameter in stats["parameter"]:
        Observation.model_validate(parameter["resource"])


def test_fhirpy_crud_and_search_on_every_resource_type(client: SyncFHIRClient) -> None:
    """Issue 13: a client we did not write creates, reads, searches, updates and deletes a
    minimal valid instance of every type the server stores."""
    for rtype in sorted(ops.TYPES - {"Bundle"}):  # fhirpy posts any Bundle to the base
        resource = client.resource(rtype, **{k: v for k, v in minimal(rtype).items()
                                             if k != "resourceType"})  # fmt: skip
        resource.save()
        assert resource["meta"]["versionId"] == "1", rtype
        found = client.resources(rtype).search(_id=resource["id"]).fetch()
        assert [r["id"] for r in found] == [resource["id"]], rtype
        resource["meta"] = {"tag": [{"system": "urn:test", "code": "updated"}]}
        resource.save()
        assert client.reference(rtype, resource["id"]).to_resource()["meta"]["versionId"] == "2"
        tagged = client.resources(rtype).search(_tag="urn:test|updated", _id=resource["id"])
        assert len(tagged.fetch()) == 1, rtype
        resource.delete()
        assert client.resources(rtype).search(_id=resource["id"]).fetch() == [], rtype


def test_fhirpy_conditional_writes_patches_and_system_interactions(
    client: SyncFHIRClient,
) -> None:
    """Issue 15: fhirpy's own conditional update/delete (``search(...).update/delete``), its
    transport for PATCH (JSON Patch and FHIRPath Patch) and the system-level interactions."""
    value = uuid.uuid4().hex
    matching = client.resources("Patient").search(identifier=f"urn:fhirpy-cond|{value}")
    resource = client.resource("Patient", gender="female",
                               identifier=[{"system": "urn:fhirpy-cond", "value": value}])  # fmt: skip
    created, was_created = matching.update(resource)
    assert was_created
    updated, was_created = matching.update(client.resource("Patient", **{
        **resource.serialize(), "gender": "male"}))  # fmt: skip
    assert (was_created, updated["id"], updated["meta"]["versionId"]) == (
        False, created["id"], "2")  # fmt: skip
    path = f"Patient/{created['id']}"
    patched = client._do_request("patch", path, [{"op": "replace", "path": "/gender",
                                                  "value": "other"}],
                                 extra_headers={"Content-Type": "application/json-patch+json"})  # fmt: skip
    assert patched["gender"] == "other"
    fhirpath = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
        {"name": "name", "valueString": "active"}, {"name": "value", "valueBoolean": True}]}]}  # fmt: skip
    assert client._do_request("patch", path, fhirpath)["active"] is True
    assert client._do_request("get", f"{path}/$meta")["parameter"][0]["valueMeta"][
        "versionId"] == "4"  # fmt: skip
    across = client._do_request(
        "get", "", params={"_type": "Patient,Observation", "_id": created["id"]}
    )
    Bundle.model_validate(across)
    assert [e["resource"]["id"] for e in across["entry"]] == [created["id"]]
    Bundle.model_validate(client._do_request("get", "_history", params={"_count": "5"}))
    matching.delete()
    assert matching.fetch() == []


def test_smart_python_client_posts_a_form_search(client: SyncFHIRClient, live_service: Service
                                                 ) -> None:  # fmt: skip
    """Issue 15: ``POST [type]/_search`` with a form body, sent by fhirclient (the SMART Python
    client) through its own form transport; the same entries as fhirpy's GET search."""
    from fhirclient.server import FHIRServer

    family = f"Form{uuid.uuid4().hex[:8]}"
    client.resource("Patient", name=[{"family": family}]).save()
    server = FHIRServer(None, base_uri=f"{live_service.base_url}/api/fhir/")
    server.session.headers["Authorization"] = f"Bearer {token()}"
    posted = server.post_as_form(f"{server.base_uri}Patient/_search", {"family": family}).json()
    got = client.resources("Patient").search(family=family).fetch_all()
    assert posted["resourceType"] == "Bundle"
    assert [e["resource"]["id"] for e in posted["entry"]] == [p.id for p in got]
    assert len(got) == 1
