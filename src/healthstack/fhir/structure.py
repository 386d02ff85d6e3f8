"""Structural validation of any R4 resource against the shipped definitions (``definitions/``).

Checks unknown elements, cardinality (arrays vs single values, no empty arrays, no nulls),
required elements, primitive types (``primitives.py``), choice types (``value[x]``, one at most),
``_element`` primitive extensions, nested datatypes and backbone elements, contained resources,
extensions, required value-set bindings, and a few invariants (obs-6, reference format, ref-1,
dom-2, ele-1). ``modifierExtension`` is refused: the server does not understand any.

The definitions are compiled once into per-type tables keyed by the JSON property name (choice
types expanded: ``valueQuantity``), so a check is a dict lookup per property and no allocation
but the path of nested objects. Every issue has a FHIRPath-like ``expression`` in the JSON form
(``Patient.name[0].given[1]``, ``Observation.valueQuantity.value``); diagnostics never echo a
value (it may be PHI).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from healthstack.core.outcome import FhirError, issue
from healthstack.fhir import definitions
from healthstack.fhir.primitives import (
    ID_RE,
    LOCAL_REFERENCE_RE,
    MAX_DECIMAL,
    REFERENCE_RE,
    Check,
    checks,
)

__all__ = ["ID_RE", "MAX_DECIMAL", "REFERENCE_RE", "table", "validate"]

MAX_ISSUES = 50
# Nested objects; real resources stay far below (a Questionnaire nests items ~10 deep), and the
# limit keeps hostile nesting a 422 rather than a RecursionError.
MAX_DEPTH = 64
_NAME_RE = re.compile(r"_?[A-Za-z][A-Za-z0-9]{0,63}")
PRIMITIVE, COMPLEX, RESOURCE, PRIMITIVE_EXTENSION, SKIP, MODIFIER = range(6)
_CODED = ("Coding", "CodeableConcept")


class Field:
    """One JSON property of a type: ``valueQuantity``, ``_birthDate``, ``component``..."""

    __slots__ = ("base", "check", "codes", "contained", "kind", "many", "name", "pairs", "table",
                 "type", "valueset")  # fmt: skip

    def __init__(self, name: str, type_: str, many: bool, base: str | None = None) -> None:
        self.name, self.type, self.many, self.base = name, type_, many, base
        self.kind = COMPLEX
        self.check: Check | None = None
        self.table: Table | None = None
        self.codes: frozenset[str] | None = None  # required binding on a code
        self.pairs: frozenset[tuple[str, str]] | None = None  # ... on a Coding/CodeableConcept
        self.valueset: str | None = None
        self.contained = name == "contained"


class Table:
    """A resource, datatype or backbone element: its properties and what must be present."""

    __slots__ = ("fields", "invariant", "required")

    def __init__(self) -> None:
        self.fields: dict[str, Field] = {}
        self.required: list[tuple[str, tuple[str, ...]]] = []  # (name, keys that satisfy it)
        self.invariant: Callable[[_Run, dict[str, Any], str], None] | None = None


class _Run:
    """The problems of one validation (up to a cap) and the local references seen."""

    __slots__ = ("local_refs", "problems")

    def __init__(self) -> None:
        self.problems: list[tuple[str, str, str]] = []  # (code, expression, message)
        self.local_refs: list[tuple[str, str]] = []  # ("#id", expression)

    def fail(self, code: str, path: str, message: str) -> None:
        if len(self.problems) < MAX_ISSUES:
            self.problems.append((code, path, message))


# -- compiling the definitions --------------------------------------------------------------------


@functools.cache
def _tables() -> dict[str, Table]:
    raw = definitions.data()["types"]
    primitive = checks()
    tables = {name: Table() for name in raw}
    for name, spec in raw.items():
        target = tables[name]
        for element, (minimum, maximum, codes, valueset) in spec.items():
            keys = _compile(target, element, maximum != 1, codes, valueset, primitive, tables)
            if minimum > 0:
                target.required.append((element, keys))
        if definitions.is_r4_resource_type(name):
            target.fields["resourceType"] = _skip()
        target.invariant = INVARIANTS.get(name)
    return tables


def _compile(
    target: Table,
    element: str,
    many: bool,
    codes: list[str],
    valueset: str | None,
    primitive: dict[str, Check],
    tables: dict[str, Table],
) -> tuple[str, ...]:
    choice = element.endswith("[x]")
    base = element[:-3] if choice else None
    keys: list[str] = []
    for code in codes:
        key = f"{base}{code[0].upper()}{code[1:]}" if choice else element
        field = target.fields[key] = Field(key, code, many, base)
        keys.append(key)
        if element == "modifierExtension":
            field.kind = MODIFIER
        elif code in primitive:
            field.kind, field.check = PRIMITIVE, primitive[code]
            extension = target.fields[f"_{key}"] = Field(key, "Element", many)
            extension.kind, extension.table = PRIMITIVE_EXTENSION, tables["Element"]
            keys.append(f"_{key}")
        elif code == "Resource":
            field.kind = RESOURCE
        else:
            field.table = tables[code]  # a KeyError here is a broken data file: fail loudly
        if valueset is not None and (code == "code" or code in _CODED):
            _bind(field, valueset)
    return tuple(keys)


def _bind(field: Field, url: str) -> None:
    systems = definitions.valueset(url)
    if systems is None:
        return
    field.valueset = url
    if field.type == "code":
        field.codes = _codes(url)
    else:
        field.pairs = _pairs(url)


@functools.cache
def _codes(url: str) -> frozenset[str]:
    return frozenset(code for codes in (definitions.valueset(url) or {}).values() for code in codes)


@functools.cache
def _pairs(url: str) -> frozenset[tuple[str, str]]:
    systems = definitions.valueset(url) or {}
    return frozenset((system, code) for system, codes in systems.items() for code in codes)


def _skip() -> Field:
    field = Field("resourceType", "string", False)
    field.kind = SKIP
    return field


def table(type_name: str) -> Table:
    """The compiled table of a resource, datatype or backbone path (KeyError when unknown)."""
    return _tables()[type_name]


# -- invariants -----------------------------------------------------------------------------------


def _reference(run: _Run, obj: dict[str, Any], path: str) -> None:
    ref = obj.get("reference")
    if not isinstance(ref, str):
        return
    if ref.startswith("#") and LOCAL_REFERENCE_RE.fullmatch(ref):
        run.local_refs.append((ref, f"{path}.reference"))
    elif not REFERENCE_RE.match(ref):
        run.fail(
            "value",
            f"{path}.reference",
            f"{path}.reference must be Type/id, an absolute URL, urn:uuid or #contained-id",
        )


def _obs6(run: _Run, obj: dict[str, Any], path: str) -> None:
    if "dataAbsentReason" in obj and any(k.startswith("value") for k in obj):
        run.fail(
            "invariant",
            f"{path}.dataAbsentReason",
            "obs-6: dataAbsentReason only when value[x] is absent",
        )


INVARIANTS: dict[str, Callable[[_Run, dict[str, Any], str], None]] = {
    "Reference": _reference,
    "Observation": _obs6,
    "Observation.component": _obs6,
}


# -- walking a resource ---------------------------------------------------------------------------


def _object(run: _Run, spec: Table, obj: dict[str, Any], path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        run.fail("too-costly", path, f"elements nest deeper than {MAX_DEPTH} objects")
        return
    if not obj:
        run.fail("structure", path, f"{path} must not be an empty object (ele-1)")
        return
    fields = spec.fields
    chosen: set[str] | None = None
    for key, value in obj.items():
        field = fields.get(key)
        if field is None:
            _unknown(run, key, path)
            continue
        kind = field.kind
        if kind == SKIP:
            continue
        if field.base is not None:
            chosen = chosen or set()
            if field.base in chosen:
                run.fail(
                    "structure", f"{path}.{key}", f"{path}.{field.base}[x] given more than once"
                )
            chosen.add(field.base)
        if kind == MODIFIER:
            run.fail(
                "not-supported",
                f"{path}.{key}",
                "modifier extensions are not understood by this server",
            )
        elif field.many:
            _array(run, field, value, obj, path, depth)
        elif type(value) is list:
            run.fail("structure", f"{path}.{key}", f"{path}.{key} allows one value, not an array")
        elif kind == PRIMITIVE:
            _primitive(run, field, value, path, key)
        else:
            _one(run, field, value, f"{path}.{key}", depth)
    for name, keys in spec.required:
        if not any(key in obj for key in keys):
            run.fail("required", f"{path}.{name}", f"{path}.{name} is required")
    if spec.invariant is not None:
        spec.invariant(run, obj, path)


def _array(run: _Run, field: Field, value: Any, obj: dict[str, Any], path: str, depth: int) -> None:
    sub = f"{path}.{field.name}" if field.kind != PRIMITIVE_EXTENSION else f"{path}._{field.name}"
    if type(value) is not list or not value:
        run.fail("structure", sub, f"{sub} must be a non-empty JSON array")
    elif field.kind == PRIMITIVE:
        check, codes = field.check, field.codes
        assert check is not None  # every PRIMITIVE field has one (see _compile)
        for index, item in enumerate(value):
            if item is not None and check(item) and (codes is None or item in codes):
                continue  # the common case: no allocation
            if item is None and _extended(obj, field.name, index):
                continue  # a null value with its extension in _name at the same index
            _primitive(run, field, item, path, f"{field.name}[{index}]")
    else:
        for index, item in enumerate(value):
            _one(run, field, item, f"{sub}[{index}]", depth)


def _extended(obj: dict[str, Any], name: str, index: int) -> bool:
    extensions = obj.get(f"_{name}")
    return type(extensions) is list and index < len(extensions) and extensions[index] is not None


def _primitive(run: _Run, field: Field, value: Any, path: str, key: str) -> None:
    check = field.check
    assert check is not None  # every PRIMITIVE field has one (see _compile)
    if value is None:
        run.fail("structure", f"{path}.{key}", f"{path}.{key} must not be null")
    elif not check(value):
        run.fail("value", f"{path}.{key}", f"{path}.{key} is not a valid FHIR {field.type}")
    elif field.codes is not None and value not in field.codes:
        run.fail("code-invalid", f"{path}.{key}", _not_in(field, f"{path}.{key}"))


def _not_in(field: Field, path: str) -> str:
    codes = field.codes or frozenset()
    if len(codes) <= 12:
        return f"{path} must be one of: {', '.join(sorted(codes))}"
    return f"{path} must be a code of the value set {field.valueset}"


def _one(run: _Run, field: Field, value: Any, path: str, depth: int) -> None:
    kind = field.kind
    if value is None:
        if kind != PRIMITIVE_EXTENSION:  # [null, {...}] aligns extensions with array items
            run.fail("structure", path, f"{path} must not be null")
    elif kind == RESOURCE:
        _resource(run, value, path, depth + 1, field.contained)
    elif type(value) is not dict:
        run.fail("structure", path, f"{path} must be a JSON object ({field.type})")
    else:
        assert field.table is not None  # every COMPLEX/PRIMITIVE_EXTENSION field has one
        _object(run, field.table, value, path, depth + 1)
        if field.pairs is not None:
            _coded(run, field, value, path)


def _coded(run: _Run, field: Field, value: dict[str, Any], path: str) -> None:
    # A required binding on a Coding/CodeableConcept: one coding must be from the value set.
    codings = [value] if field.type == "Coding" else value.get("coding")
    pairs = field.pairs or frozenset()
    for coding in codings if type(codings) is list else ():
        if type(coding) is dict:
            system, code = coding.get("system"), coding.get("code")
            if type(system) is str and type(code) is str and (system, code) in pairs:
                return
    run.fail(
        "code-invalid", path, f"{path} needs a coding from the required value set {field.valueset}"
    )


def _unknown(run: _Run, key: str, path: str) -> None:
    # Property names are client text too: echo only ones shaped like FHIR names.
    if isinstance(key, str) and _NAME_RE.fullmatch(key):
        run.fail("structure", f"{path}.{key}", f"unknown element {path}.{key}")
    else:
        run.fail("structure", path, f"{path} has a property whose name is not a FHIR name")


def _resource(run: _Run, value: Any, path: str, depth: int, contained: bool) -> None:
    if type(value) is not dict:
        run.fail("structure", path, f"{path} must be a JSON object (a resource)")
        return
    rtype = value.get("resourceType")
    spec = _tables().get(rtype) if definitions.is_r4_resource_type(rtype) else None
    if spec is None:
        run.fail("structure", f"{path}.resourceType", f"{path} must name an R4 resource type")
        return
    if contained:  # its local references resolve against the container's contained list
        if "contained" in value:
            run.fail("invariant", f"{path}.contained", "dom-2: contained resources nest no others")
        _object(run, spec, value, path, depth)
        return
    outer, run.local_refs = run.local_refs, []
    _object(run, spec, value, path, depth)
    if run.local_refs:
        ids = _contained_ids(value.get("contained"))
        for ref, where in run.local_refs:
            if ref != "#" and ref[1:] not in ids:
                run.fail("invariant", where, f"ref-1: {where} names no contained resource")
    run.local_refs = outer


def _contained_ids(items: Any) -> set[str]:
    if type(items) is not list:
        return set()
    return {c["id"] for c in items if type(c) is dict and type(c.get("id")) is str}


def validate(resource: Any, expected_type: str | None = None) -> dict[str, Any]:
    """Return the resource when valid; raise FhirError(400/422) listing every problem otherwise."""
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "the body must be a JSON object (a FHIR resource)")
    rtype = resource.get("resourceType")
    if not definitions.is_r4_resource_type(rtype):
        raise FhirError(
            422,
            "not-supported",
            "resourceType must name an R4 resource type",
            expression="resourceType",
        )
    reason = definitions.refusal(rtype)
    if reason is not None:
        raise FhirError(
            422, "not-supported", f"{rtype} is not stored here: {reason}", expression="resourceType"
        )
    if expected_type is not None and rtype != expected_type:
        raise FhirError(
            400,
            "invalid",
            f"resourceType {rtype} does not match the URL ({expected_type})",
            expression="resourceType",
        )
    run = _Run()
    _resource(run, resource, rtype, 0, contained=False)
    if run.problems:
        issues = [issue(code, msg, expression=path) for code, path, msg in run.problems]
        raise FhirError(422, "invalid", "resource failed validation", issues=issues)
    return resource
