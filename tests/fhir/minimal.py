"""A minimal valid instance of every R4 resource type, read off the shipped definitions.

Required elements only (min >= 1), each once with a valid value of its type (the first code of an
enforced required binding); repeating elements get one item. Used to drive every type through the
validator (tests/fhir/test_fhir_structure.py) and through a client (test_fhir_client.py).
"""

from __future__ import annotations

from typing import Any

from healthstack.fhir import definitions

SAMPLES: dict[str, Any] = {
    "boolean": True, "integer": 1, "unsignedInt": 0, "positiveInt": 1, "decimal": 1.5,
    "string": "sample", "markdown": "sample", "id": "sample-1", "code": "sample",
    "uri": "http://example.org/sample", "url": "http://example.org/sample",
    "canonical": "http://example.org/sample", "base64Binary": "U2FtcGxl",
    "date": "2020-02-29", "dateTime": "2020-01-02T03:04:05Z", "instant": "2020-01-02T03:04:05.678Z",
    "time": "03:04:05", "oid": "urn:oid:1.2.3", "uuid": "urn:uuid:9d2c1f6e-2b1a-4c1d-8e0f-1a2b3c4d5e6f",
    "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">sample</div>',
}  # fmt: skip


def _bound(valueset: str | None) -> tuple[str, str] | None:
    systems = definitions.valueset(valueset) if valueset else None
    if not systems:
        return None
    system, codes = next(iter(systems.items()))
    return system, codes[0]


def value_of(code: str, valueset: str | None, depth: int) -> Any:
    bound = _bound(valueset)
    if code in SAMPLES:
        return bound[1] if bound else SAMPLES[code]
    if code == "Resource":
        return {"resourceType": "Basic", "code": {"text": "sample"}}
    if code == "Reference":
        return {"reference": "Patient/sample-1"}
    if bound and code == "Coding":
        return {"system": bound[0], "code": bound[1]}
    if bound and code == "CodeableConcept":
        return {"coding": [{"system": bound[0], "code": bound[1]}]}
    return instance_of(code, depth + 1)


def instance_of(type_name: str, depth: int = 0) -> dict[str, Any]:
    """The smallest valid content of a resource, datatype or backbone element (by path)."""
    assert depth < 20, type_name  # no required element contains itself in R4
    out: dict[str, Any] = {}
    for name, (minimum, maximum, codes, valueset) in definitions.elements(type_name).items():
        if minimum == 0:
            continue
        code = codes[0]
        key = f"{name[:-3]}{code[0].upper()}{code[1:]}" if name.endswith("[x]") else name
        value = value_of(code, valueset, depth)
        out[key] = value if maximum == 1 else [value]
    if out or depth == 0:  # a resource has its resourceType; no id, or a client would PUT it
        return out
    # FHIR JSON has no empty objects (ele-1): the first plain primitive element that is not an id.
    for name, (_, maximum, codes, valueset) in definitions.elements(type_name).items():
        if codes[0] in SAMPLES and name not in ("id", "extension") and not name.endswith("[x]"):
            value = value_of(codes[0], valueset, depth)
            return {name: value if maximum == 1 else [value]}
    return {"id": "sample-1"}


def minimal(rtype: str) -> dict[str, Any]:
    return {"resourceType": rtype, **instance_of(rtype)}
