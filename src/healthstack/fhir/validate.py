"""FHIR R4 structural validation of every resource type, from the official definitions.

Checks structure (unknown elements rejected), cardinality, primitive types (the spec's regexes),
required elements and the code values of every ``required`` binding the definitions let us expand
(``scripts/fhir_structure_data.py`` builds the tables; docs/fhir.md says what is skipped). Errors carry a FHIRPath ``expression``
(e.g. ``Observation.status``) and never echo the offending value (it may be PHI).
"""

from __future__ import annotations

import gzip
import importlib.resources
import re
from collections.abc import Callable
from typing import Any

import orjson

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
    "oid": _regex(re.compile(r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$")),
    "uuid": _regex(
        re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    ),
}

# The structure tables come from the official R4 definitions (scripts/fhir_structure_data.py):
# every datatype, resource and backbone element (keyed by path) -> element specs and choices,
# and the expanded value sets of required bindings on code elements.
TYPES: dict[str, Spec] = {}
CHOICES: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {}
CODES: dict[str, frozenset[str]] = {}
RESOURCE_TYPES: frozenset[str] = frozenset()
REFUSED: dict[str, str] = {}


def _load() -> None:
    global RESOURCE_TYPES, REFUSED
    raw = importlib.resources.files("healthstack.fhir.definitions").joinpath("r4-structure.json.gz")
    data = orjson.loads(gzip.decompress(raw.read_bytes()))
    for name, structure in data["types"].items():
        TYPES[name] = {k: (t, bool(r), bool(m)) for k, (t, r, m) in structure["elements"].items()}
        CHOICES[name] = {k: (tuple(t), bool(r)) for k, (t, r) in structure["choices"].items()}
    CODES.update({path: frozenset(codes) for path, codes in data["codes"].items()})
    REFUSED = dict(data["refused"])
    RESOURCE_TYPES = frozenset(data["resources"]) - frozenset(REFUSED)
    # Extensions inside primitive extensions (``_birthDate``): an element with extensions only.
    TYPES["Extension.element"] = {"id": ("string", False, False),
                                  "extension": ("Extension", False, True)}  # fmt: skip


_load()
STORABLE = RESOURCE_TYPES


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
        if type_name == "Resource":  # Bundle.entry.resource, Parameters.parameter.resource
            self.nested_resource(value, path)
            return
        if type_name not in TYPES:
            self.fail("not-supported", path, f"{path}: type {type_name} is not supported")
            return
        self.complex(type_name, value, path)

    def nested_resource(self, value: dict[str, Any], path: str) -> None:
        rtype = value.get("resourceType")
        if not isinstance(rtype, str) or rtype not in TYPES or "." in rtype:
            self.fail("structure", path, f"{path} must be a FHIR resource")
            return
        self.complex(rtype, {k: v for k, v in value.items() if k != "resourceType"}, path)

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
    if isinstance(rtype, str) and rtype in REFUSED:
        raise FhirError(422, "not-supported", f"{rtype} cannot be stored: {REFUSED[rtype]}",
                        expression="resourceType")  # fmt: skip
    if rtype not in RESOURCE_TYPES:
        raise FhirError(
            422,
            "not-supported",
            "resourceType must name an R4 resource type",
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
