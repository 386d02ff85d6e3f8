"""application/fhir+xml (issue 15 item 7): the R4 XML representation, both ways, every type."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from tests.conftest import Database
from tests.fhir.minimal import minimal
from tests.fhir.uscore import record

from healthstack.core.outcome import FhirError
from healthstack.fhir import definitions
from healthstack.fhir.xml import from_xml, to_xml

XML = {"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"}
DIV = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Jane <b>Doe</b></p></div>'


def _rich_patient(marker: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": DIV},
        "contained": [{"resourceType": "Organization", "id": "org", "name": "Clinic"}],
        "extension": [{"url": "http://example.org/ext", "valueBoolean": True}],
        "identifier": [{"system": "urn:xml-test", "value": marker}],
        "active": True,
        "name": [
            {
                "family": "Doe",
                "given": ["Jane", "Q"],
                "_given": [
                    None,
                    {"extension": [{"url": "http://example.org/i", "valueString": "initial"}]},
                ],
            }
        ],
        "gender": "female",
        "birthDate": "1970-01-02",
        "_birthDate": {"id": "bd"},
        "multipleBirthInteger": 2,
        "managingOrganization": {"reference": "#org"},
    }


def _observation(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2024-01-02T03:04:05Z",
        "valueQuantity": {
            "value": 72.5,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
        "component": [{"code": {"text": "n"}, "valueInteger": 3}],
    }


@pytest.mark.parametrize("rtype", sorted(definitions.RESOURCE_TYPES))
def test_every_stored_type_round_trips_json_xml_json(rtype: str) -> None:
    resource = minimal(rtype)
    assert from_xml(to_xml(resource)) == resource


def test_rich_resources_round_trip_with_order_and_types() -> None:
    patient = _rich_patient("x")
    xml = to_xml(patient)
    assert from_xml(xml) == patient
    text = xml.decode()
    # definition order, primitive attributes, xhtml kept with its own namespace
    assert text.index("<text>") < text.index("<contained>") < text.index("<extension")
    assert text.index("<identifier>") < text.index("<active") < text.index("<name>")
    assert '<birthDate value="1970-01-02" id="bd" />' in text
    assert '<extension url="http://example.org/ext"><valueBoolean value="true" />' in text
    assert DIV in text
    observation = _observation("p")
    assert from_xml(to_xml(observation)) == observation
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": patient}, {"resource": observation}]}  # fmt: skip
    assert from_xml(to_xml(bundle)) == bundle
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": patient}, {"name": "n", "valueDecimal": 1.25}]}  # fmt: skip
    assert from_xml(to_xml(parameters)) == parameters
    assert "<resource><Patient>" in to_xml(parameters).decode()


def test_us_core_transaction_bundles_round_trip_and_post_as_xml(fhir: httpx.Client) -> None:
    """The suite's US Core-shaped records (issue 13): realistic data, every entry's type."""
    for index in range(3):
        bundle = record(index, uuid.uuid4().hex[:8]).bundle
        assert from_xml(to_xml(bundle)) == bundle
    answer = fhir.post("/", content=to_xml(record(3, uuid.uuid4().hex[:8]).bundle), headers=XML)
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"] for e in from_xml(answer.content)["entry"]]
    assert statuses
    assert all(s.startswith("201") for s in statuses)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE Patient><Patient xmlns="http://hl7.org/fhir"/>',
        b'<!DOCTYPE p [<!ENTITY e "x">]><Patient xmlns="http://hl7.org/fhir">'
        b'<gender value="&e;"/></Patient>',
        b'<!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><gender value="&c;"/></Patient>',
        b'<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><gender value="&x;"/></Patient>',
        b"<Patient><gender value='female'/></Patient>",  # no FHIR namespace
        b'<Patient xmlns="http://hl7.org/fhir"><shoeSize value="44"/></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"><active value="maybe"/></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"><gender value="female"/>',
        b"\x00<Patient/>",
    ],
)
def test_hostile_or_wrong_xml_is_refused_400(body: bytes) -> None:
    with pytest.raises(FhirError) as caught:
        from_xml(body)
    assert caught.value.status == 400


def test_deep_nesting_is_refused() -> None:
    deep = b"<extension>" * 150 + b"</extension>" * 150
    with pytest.raises(FhirError) as caught:
        from_xml(b'<Patient xmlns="http://hl7.org/fhir">' + deep + b"</Patient>")
    assert caught.value.status == 400
    assert "deep" in str(caught.value)


# -- over HTTP --------------------------------------------------------------------------------------


def _count(fhir: httpx.Client, marker: str) -> int:
    found = fhir.get(
        "/Patient", params={"identifier": f"urn:xml-test|{marker}", "_total": "accurate"}
    )
    return len(found.json().get("entry", []))


def test_xml_create_then_json_read_is_equal(fhir: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    sent = _rich_patient(marker)
    created = fhir.post("/Patient", content=to_xml(sent), headers=XML)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/fhir+xml")
    back = from_xml(created.content)
    read = fhir.get(f"/Patient/{back['id']}").json()
    for key in ("id", "meta"):
        read.pop(key)
    assert read == sent
    # update in XML, read in XML
    sent["gender"] = "other"
    sent["id"] = back["id"]
    updated = fhir.put(f"/Patient/{back['id']}", content=to_xml(sent), headers=XML)
    assert updated.status_code == 200, updated.text
    assert (
        from_xml(fhir.get(f"/Patient/{back['id']}", params={"_format": "xml"}).content)["gender"]
        == "other"
    )


def test_a_client_we_did_not_write_parses_our_xml(fhir: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    pid = fhir.post("/Patient", json=_rich_patient(marker)).json()["id"]
    oid = fhir.post("/Observation", json=_observation(pid)).json()["id"]
    patient = Patient.model_validate_xml(fhir.get(f"/Patient/{pid}", headers=XML).content)
    assert patient.name[0].family == "Doe"
    assert patient.birthDate.isoformat() == "1970-01-02"
    assert patient.contained[0].name == "Clinic"
    observation = Observation.model_validate_xml(
        fhir.get(f"/Observation/{oid}", params={"_format": "application/fhir+xml"}).content
    )
    assert float(observation.valueQuantity.value) == 72.5
    bundle = Bundle.model_validate_xml(
        fhir.get("/Observation", params={"subject": f"Patient/{pid}", "_format": "xml"}).content
    )
    assert bundle.type == "searchset"
    assert bundle.entry[0].resource.id == oid
    missing = fhir.get("/Patient/no-such-patient", headers=XML)
    assert missing.status_code == 404
    assert OperationOutcome.model_validate_xml(missing.content).issue[0].severity == "error"


@pytest.mark.parametrize("content_type", ["application/fhir+xml", "application/xml", "text/xml"])
def test_hostile_xml_over_http_is_400_and_stores_nothing(
    fhir: httpx.Client, content_type: str
) -> None:
    marker = uuid.uuid4().hex
    good = to_xml(_rich_patient(marker)).decode()
    attacks = [
        good.replace(
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        ),
        good.replace('value="female"', 'value="&x;"').replace(
            "<Patient ", '<!DOCTYPE p [<!ENTITY x "female">]><Patient ', 1
        ),
        good.replace("<active", "<extension>" * 120 + "</extension>" * 120 + "<active"),
    ]
    for attack in attacks:
        response = fhir.post("/Patient", content=attack.encode(),
                             headers={"Content-Type": content_type})  # fmt: skip
        assert response.status_code == 400, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    assert _count(fhir, marker) == 0


def test_validate_and_transaction_accept_xml(fhir: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    checked = fhir.post("/Patient/$validate", content=to_xml(_rich_patient(marker)), headers=XML)
    assert checked.status_code == 200, checked.text
    assert from_xml(checked.content)["resourceType"] == "OperationOutcome"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _rich_patient(marker), "request": {"method": "POST", "url": "Patient"}}]}  # fmt: skip
    answer = fhir.post("/", content=to_xml(bundle), headers=XML)
    assert answer.status_code == 200, answer.text
    assert from_xml(answer.content)["type"] == "transaction-response"
    assert _count(fhir, marker) == 1


def test_capability_statement_lists_xml_and_is_served_as_xml(fhir: httpx.Client) -> None:
    assert fhir.get("/metadata").json()["format"] == ["json", "xml"]
    statement = from_xml(fhir.get("/metadata", headers={"Accept": "application/fhir+xml"}).content)
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["format"] == ["json", "xml"]


def test_refused_xml_is_audited(fhir: httpx.Client, module_database: Database) -> None:
    import psycopg

    body = b'<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"/>'
    assert fhir.post("/Patient", content=body, headers=XML).status_code == 400
    with psycopg.connect(module_database.owner_url) as conn:
        row = conn.execute("SELECT interaction, outcome, content FROM audit_log "
                           "ORDER BY recorded_at DESC LIMIT 1").fetchone()  # fmt: skip
    assert row is not None
    assert row[:2] == ("create", "failed")
    assert "passwd" not in str(row[2])


def test_fhirpath_patch_accepts_an_xml_parameters_body(fhir: httpx.Client) -> None:
    pid = fhir.post("/Patient", json=_rich_patient(uuid.uuid4().hex)).json()["id"]
    patch = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.gender"},
        {"name": "value", "valueCode": "male"}]}]}  # fmt: skip
    patched = fhir.patch(f"/Patient/{pid}", content=to_xml(patch), headers=XML)
    assert patched.status_code == 200, patched.text
    assert from_xml(patched.content)["gender"] == "male"


@pytest.mark.parametrize(
    "div",
    [
        '<?xml version="1.0"?><div xmlns="http://www.w3.org/1999/xhtml">x</div>',
        '<!DOCTYPE d><div xmlns="http://www.w3.org/1999/xhtml">x</div>',
        "<div>no namespace</div>",
        '<div xmlns="http://www.w3.org/1999/xhtml">unclosed',
    ],
)
def test_a_narrative_that_would_break_the_document_is_not_spliced(div: str) -> None:
    with pytest.raises(FhirError):
        to_xml({"resourceType": "Patient", "text": {"status": "generated", "div": div}})


def test_accept_quality_and_format_choose_the_representation(fhir: httpx.Client) -> None:
    def kind(**kwargs: Any) -> str:
        response = fhir.get("/metadata", **kwargs)
        assert response.status_code == 200
        return str(response.headers["content-type"]).split(";")[0]

    xml, json = "application/fhir+xml", "application/fhir+json"
    assert kind(headers={"Accept": f"{json};q=0.2, {xml};q=0.9"}) == xml
    assert kind(headers={"Accept": f"{xml};q=0.2, {json}"}) == json
    assert kind(headers={"Accept": f"{xml}, {json}"}) == xml
    assert kind(headers={"Accept": xml}, params={"_format": "json"}) == json
    assert kind(params={"_format": "text/xml"}) == xml
    # The name percent-encoded is the same parameter once decoded (the fast path must not skip it).
    response = fhir.get("/metadata?_%66ormat=xml")
    assert response.headers["content-type"].split(";")[0] == xml


def test_xml_bodies_share_the_json_body_limit(fhir: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    padded = to_xml(_rich_patient(marker)).replace(b"<active", b" " * 1_100_000 + b"<active")
    response = fhir.post("/Patient", content=padded, headers=XML)
    assert response.status_code == 413
    assert _count(fhir, marker) == 0
