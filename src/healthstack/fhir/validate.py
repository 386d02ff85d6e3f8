"""Hand-written FHIR R4 validation for Patient and Observation: table-driven and allocation-light.

Checks structure (unknown elements rejected), cardinality, primitive types (the spec's regexes),
required elements and the coded values this API relies on. Errors carry a FHIRPath ``expression``
(e.g. ``Observation.status``) and never echo the offending value (it may be PHI).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from healthstack.fhir.dates import interval
from healthstack.fhir.outcome import FhirError, issue

# FHIR decimals have no stated range; ours stay far below float8's 1.8e308 so that sums and means
# of many values (``$stats``) can never overflow, and within the 28 significant digits that
# .NET's decimal and Java's BigDecimal-backed servers round-trip (docs/fhir.md).
MAX_DECIMAL = 1e28

# name -> (type, required, repeating)
Spec = dict[str, tuple[str, bool, bool]]

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_MONTH_DAY = r"-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
DATE_RE = re.compile(rf"^{_YEAR}({_MONTH_DAY})?)?$")
DATETIME_RE = re.compile(rf"^{_YEAR}({_MONTH_DAY}(T{_TIME}{_TZ})?)?)?$")
INSTANT_RE = re.compile(rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{_TIME}{_TZ}$")
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
CODE_RE = re.compile(r"^[^\s]+( [^\s]+)*$")
URI_RE = re.compile(r"^\S+$")
TIME_RE = re.compile(rf"^{_TIME}$")
BASE64_RE = re.compile(r"^(\s*([0-9a-zA-Z+/=]){4}\s*)+$")
REFERENCE_RE = re.compile(
    r"^((https?://\S+/)?[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?"
    r"|urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)


def _full_date_ok(text: str) -> bool:
    # What validates must index and search: the same parser, range and leap-second rule.
    try:
        interval(text)
    except ValueError:
        return False
    return True


def _string(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _regex(pattern: re.Pattern[str], dated: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        ok = isinstance(v, str) and pattern.match(v) is not None
        return ok and (not dated or _full_date_ok(v))

    return check


def _int(lo: int) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and lo <= v <= 2_147_483_647


PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "boolean": lambda v: isinstance(v, bool),
    "integer": _int(-2_147_483_648),
    "unsignedInt": _int(0),
    "positiveInt": _int(1),
    "decimal": lambda v: type(v) in (int, float) and abs(v) < MAX_DECIMAL,
    "string": _string,
    "markdown": _string,
    "xhtml": lambda v: isinstance(v, str) and v.lstrip().startswith("<div"),
    "id": _regex(ID_RE),
    "code": _regex(CODE_RE),
    "uri": _regex(URI_RE),
    "url": _regex(URI_RE),
    "canonical": _regex(URI_RE),
    "base64Binary": _regex(BASE64_RE),
    "date": _regex(DATE_RE, dated=True),
    "dateTime": _regex(DATETIME_RE, dated=True),
    "instant": _regex(INSTANT_RE, dated=True),
    "time": _regex(TIME_RE),
}

# Required value sets the API relies on (bound "required" in R4).
CODES: dict[str, frozenset[str]] = {
    "Patient.gender": frozenset({"male", "female", "other", "unknown"}),
    "Patient.contact.gender": frozenset({"male", "female", "other", "unknown"}),
    "Patient.link.type": frozenset({"replaced-by", "replaces", "refer", "seealso"}),
    "Observation.status": frozenset(
        {
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    ),
    "Identifier.use": frozenset({"usual", "official", "temp", "secondary", "old"}),
    "HumanName.use": frozenset(
        {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"}
    ),
    "ContactPoint.system": frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"}),
    "ContactPoint.use": frozenset({"home", "work", "temp", "old", "mobile"}),
    "Address.use": frozenset({"home", "work", "temp", "old", "billing"}),
    "Address.type": frozenset({"postal", "physical", "both"}),
    "Quantity.comparator": frozenset({"<", "<=", ">=", ">"}),
    "Narrative.status": frozenset({"generated", "extensions", "additional", "empty"}),
}

_VALUE_TYPES = (
    "Quantity",
    "CodeableConcept",
    "string",
    "boolean",
    "integer",
    "Range",
    "Ratio",
    "time",
    "dateTime",
    "Period",
)
_EXTENSION_TYPES = (
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "Address",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "Coding",
    "ContactPoint",
    "HumanName",
    "Identifier",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
)
# Choice elements: type -> base name -> (allowed suffix types, required)
CHOICES: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "Extension": {"value": (_EXTENSION_TYPES, False)},
    "Annotation": {"author": (("Reference", "string"), False)},
    "Patient": {
        "deceased": (("boolean", "dateTime"), False),
        "multipleBirth": (("boolean", "integer"), False),
    },
    "Observation": {
        "effective": (("dateTime", "Period", "instant"), False),
        "value": (_VALUE_TYPES, False),
    },
    "Observation.component": {"value": (_VALUE_TYPES, False)},
}

_ELEMENT: Spec = {"id": ("string", False, False), "extension": ("Extension", False, True)}
_BACKBONE: Spec = {**_ELEMENT, "modifierExtension": ("Extension", False, True)}
_QTY: Spec = {
    **_ELEMENT,
    "value": ("decimal", False, False),
    "comparator": ("code", False, False),
    "unit": ("string", False, False),
    "system": ("uri", False, False),
    "code": ("code", False, False),
}

TYPES: dict[str, Spec] = {
    "Extension": {**_ELEMENT, "url": ("uri", True, False)},
    "Coding": {
        **_ELEMENT,
        "system": ("uri", False, False),
        "version": ("string", False, False),
        "code": ("code", False, False),
        "display": ("string", False, False),
        "userSelected": ("boolean", False, False),
    },
    "CodeableConcept": {
        **_ELEMENT,
        "coding": ("Coding", False, True),
        "text": ("string", False, False),
    },
    "Period": {**_ELEMENT, "start": ("dateTime", False, False), "end": ("dateTime", False, False)},
    "Identifier": {
        **_ELEMENT,
        "use": ("code", False, False),
        "type": ("CodeableConcept", False, False),
        "system": ("uri", False, False),
        "value": ("string", False, False),
        "period": ("Period", False, False),
        "assigner": ("Reference", False, False),
    },
    "Reference": {
        **_ELEMENT,
        "reference": ("string", False, False),
        "type": ("uri", False, False),
        "identifier": ("Identifier", False, False),
        "display": ("string", False, False),
    },
    "HumanName": {
        **_ELEMENT,
        "use": ("code", False, False),
        "text": ("string", False, False),
        "family": ("string", False, False),
        "given": ("string", False, True),
        "prefix": ("string", False, True),
        "suffix": ("string", False, True),
        "period": ("Period", False, False),
    },
    "ContactPoint": {
        **_ELEMENT,
        "system": ("code", False, False),
        "value": ("string", False, False),
        "use": ("code", False, False),
        "rank": ("positiveInt", False, False),
        "period": ("Period", False, False),
    },
    "Address": {
        **_ELEMENT,
        "use": ("code", False, False),
        "type": ("code", False, False),
        "text": ("string", False, False),
        "line": ("string", False, True),
        "city": ("string", False, False),
        "district": ("string", False, False),
        "state": ("string", False, False),
        "postalCode": ("string", False, False),
        "country": ("string", False, False),
        "period": ("Period", False, False),
    },
    "Quantity": _QTY,
    "Range": {**_ELEMENT, "low": ("Quantity", False, False), "high": ("Quantity", False, False)},
    "Ratio": {
        **_ELEMENT,
        "numerator": ("Quantity", False, False),
        "denominator": ("Quantity", False, False),
    },
    "Attachment": {
        **_ELEMENT,
        "contentType": ("code", False, False),
        "language": ("code", False, False),
        "data": ("base64Binary", False, False),
        "url": ("url", False, False),
        "size": ("unsignedInt", False, False),
        "hash": ("base64Binary", False, False),
        "title": ("string", False, False),
        "creation": ("dateTime", False, False),
    },
    "Annotation": {
        **_ELEMENT,
        "time": ("dateTime", False, False),
        "text": ("markdown", True, False),
    },
    "Meta": {
        **_ELEMENT,
        "versionId": ("id", False, False),
        "lastUpdated": ("instant", False, False),
        "source": ("uri", False, False),
        "profile": ("canonical", False, True),
        "security": ("Coding", False, True),
        "tag": ("Coding", False, True),
    },
    "Narrative": {**_ELEMENT, "status": ("code", True, False), "div": ("xhtml", True, False)},
}

_RESOURCE: Spec = {
    "id": ("id", False, False),
    "meta": ("Meta", False, False),
    "implicitRules": ("uri", False, False),
    "language": ("code", False, False),
    "text": ("Narrative", False, False),
    "extension": ("Extension", False, True),
    "modifierExtension": ("Extension", False, True),
}

TYPES["Patient.contact"] = {
    **_BACKBONE,
    "relationship": ("CodeableConcept", False, True),
    "name": ("HumanName", False, False),
    "telecom": ("ContactPoint", False, True),
    "address": ("Address", False, False),
    "gender": ("code", False, False),
    "organization": ("Reference", False, False),
    "period": ("Period", False, False),
}
TYPES["Patient.communication"] = {
    **_BACKBONE,
    "language": ("CodeableConcept", True, False),
    "preferred": ("boolean", False, False),
}
TYPES["Patient.link"] = {
    **_BACKBONE,
    "other": ("Reference", True, False),
    "type": ("code", True, False),
}
TYPES["Patient"] = {
    **_RESOURCE,
    "identifier": ("Identifier", False, True),
    "active": ("boolean", False, False),
    "name": ("HumanName", False, True),
    "telecom": ("ContactPoint", False, True),
    "gender": ("code", False, False),
    "birthDate": ("date", False, False),
    "address": ("Address", False, True),
    "maritalStatus": ("CodeableConcept", False, False),
    "photo": ("Attachment", False, True),
    "contact": ("Patient.contact", False, True),
    "communication": ("Patient.communication", False, True),
    "generalPractitioner": ("Reference", False, True),
    "managingOrganization": ("Reference", False, False),
    "link": ("Patient.link", False, True),
}
_REF_RANGE: Spec = {
    **_BACKBONE,
    "low": ("Quantity", False, False),
    "high": ("Quantity", False, False),
    "type": ("CodeableConcept", False, False),
    "appliesTo": ("CodeableConcept", False, True),
    "age": ("Range", False, False),
    "text": ("string", False, False),
}
TYPES["Observation.referenceRange"] = _REF_RANGE
TYPES["Observation.component"] = {
    **_BACKBONE,
    "code": ("CodeableConcept", True, False),
    "dataAbsentReason": ("CodeableConcept", False, False),
    "interpretation": ("CodeableConcept", False, True),
    "referenceRange": ("Observation.referenceRange", False, True),
}
TYPES["Observation"] = {
    **_RESOURCE,
    "identifier": ("Identifier", False, True),
    "basedOn": ("Reference", False, True),
    "partOf": ("Reference", False, True),
    "status": ("code", True, False),
    "category": ("CodeableConcept", False, True),
    "code": ("CodeableConcept", True, False),
    "subject": ("Reference", False, False),
    "focus": ("Reference", False, True),
    "encounter": ("Reference", False, False),
    "issued": ("instant", False, False),
    "performer": ("Reference", False, True),
    "dataAbsentReason": ("CodeableConcept", False, False),
    "interpretation": ("CodeableConcept", False, True),
    "note": ("Annotation", False, True),
    "bodySite": ("CodeableConcept", False, False),
    "method": ("CodeableConcept", False, False),
    "specimen": ("Reference", False, False),
    "device": ("Reference", False, False),
    "referenceRange": ("Observation.referenceRange", False, True),
    "hasMember": ("Reference", False, True),
    "derivedFrom": ("Reference", False, True),
    "component": ("Observation.component", False, True),
}
SUPPORTED = ("Patient", "Observation")


class Validator:
    """Collects every problem of one resource (up to a cap) rather than stopping at the first."""

    MAX_ISSUES = 50

    def __init__(self) -> None:
        self.problems: list[tuple[str, str, str]] = []  # (code, expression, message)

    def fail(self, code: str, path: str, message: str) -> None:
        if len(self.problems) < self.MAX_ISSUES:
            self.problems.append((code, path, message))

    def element(self, type_name: str, value: Any, path: str) -> None:
        check = PRIMITIVES.get(type_name)
        if check is not None:
            if not check(value):
                self.fail("value", path, f"{path} is not a valid FHIR {type_name}")
            return
        if not isinstance(value, dict):
            self.fail("structure", path, f"{path} must be a JSON object ({type_name})")
            return
        self.complex(type_name, value, path)

    def complex(self, type_name: str, obj: dict[str, Any], path: str) -> None:
        spec = TYPES[type_name]
        choices = CHOICES.get(type_name, {})
        seen_choice: dict[str, str] = {}
        for key, value in obj.items():
            self.member(type_name, spec, choices, seen_choice, key, value, path)
        for name, (_, required, _many) in spec.items():
            if required and name not in obj:
                self.fail("required", f"{path}.{name}", f"{path}.{name} is required")
        for base, (_, required) in choices.items():
            if required and base not in seen_choice:
                self.fail("required", f"{path}.{base}[x]", f"{path}.{base}[x] is required")
        self.invariants(type_name, obj, path)

    def member(
        self,
        type_name: str,
        spec: Spec,
        choices: dict[str, tuple[tuple[str, ...], bool]],
        seen_choice: dict[str, str],
        key: str,
        value: Any,
        path: str,
    ) -> None:
        sub = f"{path}.{key}"
        if key.startswith("_") and key[1:] in spec:
            self.primitive_extension(spec[key[1:]], value, sub)
            return
        if key in spec:
            field_type, _, many = spec[key]
            self.cardinality(field_type, many, value, sub, f"{type_name}.{key}")
            return
        choice = _choice_of(choices, key)
        if choice is None:
            self.fail("structure", sub, f"unknown element {sub}")
            return
        base, suffix_type = choice
        if base in seen_choice:
            self.fail("structure", sub, f"{path}.{base}[x] given more than once")
        seen_choice[base] = suffix_type
        self.element(suffix_type, value, sub)

    def cardinality(
        self, field_type: str, many: bool, value: Any, path: str, code_key: str
    ) -> None:
        if many:
            if not isinstance(value, list) or not value:
                self.fail("structure", path, f"{path} must be a non-empty JSON array")
                return
            for index, item in enumerate(value):
                self.single(field_type, item, f"{path}[{index}]", code_key)
            return
        if isinstance(value, list):
            self.fail("structure", path, f"{path} allows at most one value, not an array")
            return
        self.single(field_type, value, path, code_key)

    def single(self, field_type: str, value: Any, path: str, code_key: str) -> None:
        if value is None:
            self.fail("structure", path, f"{path} must not be null")
            return
        self.element(field_type, value, path)
        allowed = CODES.get(code_key)
        if allowed is not None and isinstance(value, str) and value not in allowed:
            self.fail("code-invalid", path, f"{path} must be one of: {', '.join(sorted(allowed))}")

    def primitive_extension(self, field: tuple[str, bool, bool], value: Any, path: str) -> None:
        field_type, _, many = field
        if field_type not in PRIMITIVES:
            self.fail("structure", path, f"unknown element {path}")
            return
        for item in value if (many and isinstance(value, list)) else [value]:
            if item is not None:
                self.element("Extension.element", item, path)

    def invariants(self, type_name: str, obj: dict[str, Any], path: str) -> None:
        if type_name == "Reference":
            ref = obj.get("reference")
            if isinstance(ref, str) and not REFERENCE_RE.match(ref):
                self.fail(
                    "value",
                    f"{path}.reference",
                    f"{path}.reference must be Type/id, an absolute URL or urn:uuid",
                )
        elif type_name in ("Observation", "Observation.component"):
            has_value = any(k.startswith("value") for k in obj)
            if has_value and "dataAbsentReason" in obj:
                self.fail(
                    "invariant",
                    f"{path}.dataAbsentReason",
                    "obs-6: dataAbsentReason only when value[x] is absent",
                )
        elif type_name == "Coding" and "code" in obj and "system" not in obj:
            return


TYPES["Extension.element"] = {**_ELEMENT}


def _choice_of(
    choices: dict[str, tuple[tuple[str, ...], bool]], key: str
) -> tuple[str, str] | None:
    for base, (types, _) in choices.items():
        if key.startswith(base) and len(key) > len(base):
            suffix = key[len(base) :]
            for type_name in types:
                if suffix == type_name[0].upper() + type_name[1:]:
                    return base, type_name
    return None


def validate(resource: Any, expected_type: str | None = None) -> dict[str, Any]:
    """Return the resource when valid; raise FhirError(400/422) listing every problem otherwise."""
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a FHIR resource)")
    rtype = resource.get("resourceType")
    if rtype not in SUPPORTED:
        raise FhirError(
            422,
            "not-supported",
            "resourceType must be Patient or Observation",
            expression="resourceType",
        )
    if expected_type is not None and rtype != expected_type:
        raise FhirError(
            400,
            "invalid",
            f"resourceType {rtype} does not match the URL ({expected_type})",
            expression="resourceType",
        )
    validator = Validator()
    body = {k: v for k, v in resource.items() if k != "resourceType"}
    if "contained" in body:
        validator.fail(
            "not-supported", f"{rtype}.contained", "contained resources are not supported"
        )
        body.pop("contained")
    if "modifierExtension" in body:
        validator.fail(
            "not-supported",
            f"{rtype}.modifierExtension",
            "modifier extensions are not understood by this server",
        )
    validator.complex(rtype, body, rtype)
    if validator.problems:
        issues = [issue(code, msg, expression=path) for code, path, msg in validator.problems]
        raise FhirError(422, "invalid", "resource failed validation", issues=issues)
    return resource
