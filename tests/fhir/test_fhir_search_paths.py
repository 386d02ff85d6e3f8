"""The search index's fast navigator gives the values fhirpathpy gives, for every parameter path
it handles, on every resource type (searchdefs' module docstring).

Each type is filled densely from the R4 definitions (every element of the resource and of its
backbone elements present once, choice elements as their first type), so each path finds
something to compare; the US Core record adds realistic content. Plain elements whose name
prefixes a sibling (``status``/``statusReason``) are checked absent, where a choice-style scan
would have read the sibling.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.fhir import uscore
from tests.fhir.minimal import value_of

from healthstack.fhir import definitions, searchdefs

SKIPPED = ("id", "extension", "modifierExtension", "contained", "text")


def dense(type_name: str, depth: int = 0) -> dict[str, Any]:
    """Every element of ``type_name`` once (backbone elements filled the same way)."""
    out: dict[str, Any] = {}
    for name, (_, maximum, codes, valueset) in definitions.elements(type_name).items():
        if name in SKIPPED:
            continue
        code = codes[0]
        key = f"{name[:-3]}{code[0].upper()}{code[1:]}" if name.endswith("[x]") else name
        backbone = f"{type_name}.{name}"
        if code in ("BackboneElement", "Element") and depth < 2 and definitions.elements(backbone):
            value: Any = dense(backbone, depth + 1)
        else:
            value = value_of(code, valueset, 1)
        out[key] = value if maximum == 1 else [value]
    return out


def simple_paths(rtype: str) -> list[tuple[str, str]]:
    return [
        (code, path)
        for code in searchdefs.params_of(rtype)
        for path in searchdefs.raw_paths(rtype, code)
        if searchdefs._simple_path(rtype, path) is not None
    ]


def differences(resource: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    rtype, found = resource["resourceType"], []
    for code, path in simple_paths(rtype):
        fast = searchdefs.compile_path(rtype, path)(resource)
        # fhirpathpy resolves no base-type root (Resource.meta on an Account finds nothing):
        # the same path from the type's own root.
        for base in ("Resource.", "DomainResource."):
            path = path.replace(base, f"{rtype}.") if path.startswith(base) else path
        engine = searchdefs._engine(path)(resource)
        if fast != engine:
            found.append((code, path, fast, engine))
    return found


@pytest.mark.parametrize("rtype", sorted(searchdefs.resource_types()))
def test_the_navigator_agrees_with_fhirpath_on_a_dense_instance(rtype: str) -> None:
    resource = {"resourceType": rtype, **dense(rtype)}
    assert differences(resource) == []


def test_the_navigator_agrees_with_fhirpath_on_a_us_core_record() -> None:
    record = uscore.record(3, "paths")
    resources = [entry["resource"] for entry in record.bundle["entry"]]
    assert {r["resourceType"] for r in resources} >= {"Patient", "Observation", "Encounter"}
    compared = 0
    for resource in resources:
        assert differences(resource) == [], resource["resourceType"]
        compared += len(simple_paths(resource["resourceType"]))
    assert compared > 300


def test_an_absent_plain_element_does_not_read_a_sibling_that_extends_its_name() -> None:
    # Invalid (status is required) but indexing must not take statusReason for a status.
    request = {"resourceType": "MedicationRequest", "intent": "order",
               "statusReason": {"coding": [{"system": "http://example.org", "code": "held"}]}}  # fmt: skip
    status = searchdefs.params_of("MedicationRequest")["status"]
    assert status.values(request) == []
    assert differences(request) == []
    # A choice element still finds its typed key.
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "valueQuantity": {"value": 1, "unit": "mg"}}  # fmt: skip
    quantity = searchdefs.params_of("Observation")["value-quantity"]
    assert quantity.values(observation) == [{"value": 1, "unit": "mg"}]


def test_a_typed_value_followed_by_steps_takes_the_navigator_and_agrees() -> None:
    path = "(Observation.value.ofType(CodeableConcept)).text"
    assert searchdefs._simple_path("Observation", path) is not None
    coded = {"resourceType": "Observation", "status": "final", "code": {"text": "smoking"},
             "valueCodeableConcept": {"text": "Never smoker"}}  # fmt: skip
    measured = {**coded, "valueQuantity": {"value": 1}}
    del measured["valueCodeableConcept"]
    assert searchdefs.params_of("Observation")["value-string"].values(coded) == ["Never smoker"]
    assert differences(coded) == []
    assert differences(measured) == []
