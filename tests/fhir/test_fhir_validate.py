"""The hand-written validator: what it accepts, what it rejects and where it points."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from hypothesis import given, settings
from hypothesis import strategies as st

from healthstack.core.outcome import FhirError
from healthstack.fhir.structure import table, validate

GOOD_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p-1",
    "meta": {"profile": ["http://example.org/p"]},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
    "extension": [{"url": "http://example.org/ext", "valueString": "x"}],
    "identifier": [
        {
            "use": "official",
            "system": "urn:mrn",
            "value": "1",
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
        }
    ],
    "active": True,
    "name": [{"use": "official", "family": "Doe", "given": ["J", "K"]}],
    "telecom": [{"system": "phone", "value": "555", "use": "home", "rank": 1}],
    "gender": "unknown",
    "birthDate": "2000-02-29",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "2000-02-29T10:00:00+01:00",
            }
        ]
    },
    "deceasedBoolean": False,
    "address": [{"line": ["1 Main St"], "city": "X", "postalCode": "1"}],
    "multipleBirthInteger": 2,
    "contact": [{"name": {"family": "Roe"}, "gender": "female"}],
    "communication": [{"language": {"text": "en"}, "preferred": True}],
    "managingOrganization": {"reference": "Organization/1"},
    "link": [{"other": {"reference": "Patient/2"}, "type": "seealso"}],
}
GOOD_OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "amended",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "subject": {"reference": "Patient/p-1"},
    "effectivePeriod": {"start": "2024-01-01T00:00:00Z"},
    "issued": "2024-01-01T00:00:00.123Z",
    "note": [{"authorString": "nurse", "text": "ok"}],
    "component": [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {"value": 120, "unit": "mmHg", "comparator": "<"},
        },
        {"code": {"text": "x"}, "dataAbsentReason": {"text": "asked-unknown"}},
    ],
    "referenceRange": [{"low": {"value": 1}, "high": {"value": 2.5}, "text": "normal"}],
}


@pytest.mark.parametrize("resource", [GOOD_PATIENT, GOOD_OBSERVATION])
def test_valid_resources_pass_and_agree_with_fhir_resources(resource: dict[str, Any]) -> None:
    assert validate(resource) is resource
    model = Patient if resource["resourceType"] == "Patient" else Observation
    model.model_validate(resource)


def _expressions(resource: dict[str, Any]) -> set[str]:
    with pytest.raises(FhirError) as caught:
        validate(resource)
    return {e for i in caught.value.issues for e in i.get("expression", [])}


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"status": "done"}, "Observation.status"),
        ({"status": None}, "Observation.status"),
        ({"code": None}, "Observation.code"),
        ({"valueString": "x", "dataAbsentReason": {"text": "x"}}, "Observation.dataAbsentReason"),
        ({"valueQuantity": {"value": "12"}}, "Observation.valueQuantity.value"),
        ({"valueQuantity": {"value": 1}, "valueString": "x"}, "Observation.valueString"),
        ({"valueFoo": 1}, "Observation.valueFoo"),
        ({"effectiveDateTime": "2024-01-01T10:00"}, "Observation.effectiveDateTime"),
        ({"issued": "2024-01-01"}, "Observation.issued"),
        ({"subject": {"reference": "not a reference"}}, "Observation.subject.reference"),
        ({"subject": [{"reference": "Patient/1"}]}, "Observation.subject"),
        ({"category": {"text": "x"}}, "Observation.category"),
        ({"category": []}, "Observation.category"),
        ({"component": [{"valueString": "x"}]}, "Observation.component[0].code"),
        # contained resources are allowed now, and validated like any other
        ({"contained": [{"resourceType": "Observation"}]}, "Observation.contained[0].status"),
        ({"modifierExtension": [{"url": "http://x"}]}, "Observation.modifierExtension"),
        ({"extension": [{"valueString": "x"}]}, "Observation.extension[0].url"),
        ({"id": "has space"}, "Observation.id"),
        ({"meta": {"lastUpdated": "yesterday"}}, "Observation.meta.lastUpdated"),
    ],
)
def test_invalid_observations_point_at_the_element(change: dict[str, Any], expression: str) -> None:
    resource = {**GOOD_OBSERVATION, **change}
    resource = {k: v for k, v in resource.items() if v is not None or k == "status"}
    if change.get("status", "") is None:
        resource.pop("status")
    assert expression in _expressions(resource)


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"gender": "M"}, "Patient.gender"),
        ({"birthDate": "2001-02-29"}, "Patient.birthDate"),
        ({"birthDate": "1990-1-1"}, "Patient.birthDate"),
        ({"active": "true"}, "Patient.active"),
        ({"name": [{"family": ["Doe"]}]}, "Patient.name[0].family"),
        ({"name": [{"given": "J"}]}, "Patient.name[0].given"),
        ({"name": [{"family": ""}]}, "Patient.name[0].family"),
        ({"identifier": [{"use": "primary"}]}, "Patient.identifier[0].use"),
        ({"telecom": [{"rank": 0}]}, "Patient.telecom[0].rank"),
        ({"link": [{"type": "seealso"}]}, "Patient.link[0].other"),
        ({"deceasedBoolean": True, "deceasedDateTime": "2020"}, "Patient.deceasedDateTime"),
        ({"ssn": "x"}, "Patient.ssn"),
    ],
)
def test_invalid_patients_point_at_the_element(change: dict[str, Any], expression: str) -> None:
    assert expression in _expressions({**GOOD_PATIENT, **change})


def test_errors_never_echo_values_and_are_422() -> None:
    with pytest.raises(FhirError) as caught:
        validate({**GOOD_PATIENT, "gender": "Secret-Value-123", "birthDate": "Secret-Value-456"})
    assert caught.value.status == 422
    assert "Secret-Value" not in str(caught.value.issues)


@pytest.mark.parametrize("body", [[], "x", {"resourceType": "Encounter"}, {}])
def test_wrong_shapes_are_rejected(body: Any) -> None:
    with pytest.raises(FhirError) as caught:
        validate(body)
    assert caught.value.status in (400, 422)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "code",
                    "value",
                    "valueString",
                    "coding",
                    "x",
                    "_id",
                    "extension",
                    "url",
                    "status",
                    "subject",
                    "reference",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["Patient", "Observation"]),
    st.dictionaries(
        st.sampled_from([*table("Observation").fields, *table("Patient").fields, "zz"]),
        json_values,
        max_size=6,
    ),
)
def test_arbitrary_json_never_crashes_the_validator(rtype: str, body: dict[str, Any]) -> None:
    errors: list[FhirError] = []
    try:
        validate({"resourceType": rtype, **body})
    except FhirError as error:
        errors.append(error)
    for error in errors:  # anything else (TypeError, KeyError...) fails the test
        assert error.status in (400, 422)
        assert all(i.get("expression") for i in error.issues)


def test_deep_nesting_is_a_clean_error() -> None:
    deep: dict[str, Any] = {"url": "http://x"}
    for _ in range(400):
        deep = {"url": "http://x", "extension": [deep]}
    with pytest.raises((FhirError, RecursionError)):
        validate({"resourceType": "Patient", "extension": [deep], "gender": "bad"})
