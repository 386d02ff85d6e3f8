"""A minimal valid instance of every R4 resource type, generated from the validator's own tables.

Required elements only (min >= 1), each with a valid value of its type (the first code of a
required binding); repeating elements get one item. Used to drive every type through a client.
"""

from __future__ import annotations

from typing import Any

from healthstack.fhir.validate import CHOICES, CODES, PRIMITIVES, TYPES

SAMPLES: dict[str, Any] = {
    "boolean": True, "integer": 1, "unsignedInt": 0, "positiveInt": 1, "decimal": 1.5,
    "string": "sample", "markdown": "sample", "id": "sample-1", "code": "sample",
    "uri": "http://example.org/sample", "url": "http://example.org/sample",
    "canonical": "http://example.org/sample", "base64Binary": "U2FtcGxl",
    "date": "2020-01-02", "dateTime": "2020-01-02T03:04:05Z", "instant": "2020-01-02T03:04:05Z",
    "time": "03:04:05", "oid": "urn:oid:1.2.3", "uuid": "urn:uuid:9d2c1f6e-2b1a-4c1d-8e0f-1a2b3c4d5e6f",
    "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">sample</div>',
}  # fmt: skip


def value_of(type_name: str, code_key: str, depth: int) -> Any:
    if type_name in PRIMITIVES:
        codes = CODES.get(code_key)
        return sorted(codes)[0] if codes else SAMPLES[type_name]
    if type_name == "Reference":
        return {"reference": "Patient/sample-1"}
    if type_name == "Resource":
        return {"resourceType": "Basic", "code": {"text": "sample"}}
    return instance_of(type_name, depth + 1)


def instance_of(type_name: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if depth > 6:
        return out
    for name, (field_type, required, many) in TYPES[type_name].items():
        if required:
            value = value_of(field_type, f"{type_name}.{name}", depth)
            out[name] = [value] if many else value
    for base, (types, required) in CHOICES.get(type_name, {}).items():
        if required:
            choice = types[0]
            out[base + choice[0].upper() + choice[1:]] = value_of(choice, "", depth)
    if not out and depth:
        # FHIR elements must carry content: the first primitive element that is not an id.
        for name, (field_type, _, many) in TYPES[type_name].items():
            if field_type in PRIMITIVES and name != "id":
                value = value_of(field_type, f"{type_name}.{name}", depth)
                out[name] = [value] if many else value
                break
    return out


def minimal(rtype: str) -> dict[str, Any]:
    resource = {"resourceType": rtype, **instance_of(rtype)}
    if rtype == "Bundle":
        resource["type"] = "collection"  # batch and transaction Bundles are processed, not stored
    return resource
