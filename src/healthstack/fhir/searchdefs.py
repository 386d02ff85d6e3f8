"""R4 search parameters and the Patient compartment, as data (``definitions/r4-search.json.gz``).

Every parameter is the official SearchParameter's FHIRPath expression, compiled once. Simple
paths (``Observation.code``, ``(Observation.value as Quantity)``) run through a small navigator;
anything else runs through ``fhirpathpy``, a maintained FHIRPath implementation.
``tests/fhir/test_fhir_search_paths.py`` checks that both give the same values on every type's
parameters. ``.where(resolve() is X)`` (which needs a server) arrives already rewritten by
``scripts/fhir_search_data.py`` as a reference-type filter.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from healthstack.fhir import structure

Evaluate = Callable[[dict[str, Any]], list[Any]]
_STEP = re.compile(r"^[a-z][A-Za-z0-9]*$")
_OF_TYPE = re.compile(r"^(?P<path>.+?)(?:\.ofType\((?P<t1>[A-Za-z]+)\)| as (?P<t2>[A-Za-z]+))$")


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # token string reference date number quantity uri composite
    paths: tuple[tuple[Evaluate, str | None], ...]  # (evaluator, reference type filter)
    targets: tuple[str, ...]
    components: tuple[tuple[str, str], ...]  # composite: (component parameter id, expression)
    id: str

    def values(self, resource: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for evaluate, ref_type in self.paths:
            found = evaluate(resource)
            if ref_type is not None:
                found = [v for v in found if _references(v, ref_type)]
            out.extend(found)
        return out


def _references(value: Any, rtype: str) -> bool:
    ref = value.get("reference") if isinstance(value, dict) else None
    return isinstance(ref, str) and (ref.startswith(f"{rtype}/") or f"/{rtype}/" in ref)


@functools.cache
def _data() -> dict[str, Any]:
    raw = importlib.resources.files("healthstack.fhir.definitions").joinpath("r4-search.json.gz")
    loaded: dict[str, Any] = orjson.loads(gzip.decompress(raw.read_bytes()))
    return loaded


def resource_types() -> frozenset[str]:
    """Every R4 resource type the definitions know (the Patient CompartmentDefinition lists all)."""
    return frozenset(_data()["params"])


def source() -> dict[str, str]:
    meta: dict[str, str] = _data()["meta"]
    return meta


@functools.cache
def params_of(rtype: str) -> dict[str, SearchParam]:
    """The search parameters of ``rtype`` by code (empty for an unknown type)."""
    raw = _data()["params"].get(rtype, {})
    return {code: _param(rtype, code, spec) for code, spec in raw.items()}


def raw_paths(rtype: str, code: str) -> list[str]:
    """The FHIRPath members of a parameter as the definitions spell them."""
    return [p["path"] for p in _data()["params"].get(rtype, {}).get(code, {}).get("paths", [])]


def param_by_id(rtype: str, param_id: str) -> SearchParam | None:
    return next((p for p in params_of(rtype).values() if p.id == param_id), None)


def elements_of(rtype: str) -> dict[str, list[str]]:
    """Top-level element names: ``summary`` (isSummary) and ``mandatory`` (min >= 1)."""
    found: dict[str, list[str]] = _data()["elements"].get(rtype, {"summary": [], "mandatory": []})
    return found


def in_some_compartment(rtype: str) -> bool:
    """Whether resources of ``rtype`` can belong to a patient's compartment at all."""
    return rtype == "Patient" or bool(compartment_params(rtype))


@functools.cache
def compartment_params(rtype: str) -> tuple[str, ...]:
    """The parameters that place a ``rtype`` in a patient's compartment (official definition)."""
    return tuple(_data()["compartment"].get(rtype, ()))


def _param(rtype: str, code: str, spec: dict[str, Any]) -> SearchParam:
    paths = tuple((compile_path(rtype, p["path"]), p.get("ref")) for p in spec["paths"])
    components = tuple((c["ref"], c["expression"]) for c in spec.get("components", ()))
    return SearchParam(code, spec["type"], paths, tuple(spec.get("targets", ())), components,
                       spec["id"])  # fmt: skip


@functools.cache
def compile_path(rtype: str, expression: str) -> Evaluate:
    """A fast navigator for plain paths, else the FHIRPath engine; both return a flat list."""
    fast = _simple_path(rtype, expression)
    return fast if fast is not None else _engine(expression)


def _engine(expression: str) -> Evaluate:
    compiled = fhirpath_compile(expression, models["r4"])

    def evaluate(resource: dict[str, Any]) -> list[Any]:
        result = compiled(resource, {})
        return list(result) if isinstance(result, list) else [result]

    return evaluate


def _simple_path(rtype: str, expression: str) -> Evaluate | None:
    text = expression.strip()
    then = _typed_then(rtype, text)
    if then is not None:
        return then
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    wanted: str | None = None
    typed = _OF_TYPE.match(text)
    if typed:
        text, wanted = typed.group("path"), typed.group("t1") or typed.group("t2")
    if text == rtype and wanted is None:
        return _whole  # a composite parameter's path: the resource itself, no engine needed
    root, _, rest = text.partition(".")
    steps = rest.split(".") if rest else []
    if root not in (rtype, "Resource", "DomainResource") or not steps:
        return None
    if not all(_STEP.match(s) for s in steps):
        return None
    return _navigator(tuple(steps), wanted, _may_be_choice(rtype, steps))


def _whole(resource: dict[str, Any]) -> list[Any]:
    return [resource]


def _typed_then(rtype: str, text: str) -> Evaluate | None:
    """``(Observation.value.ofType(CodeableConcept)).text``: a simple path, then plain steps
    (fhirpathpy takes ~30 us for it on a vital sign, the navigator ~1 us)."""
    if not text.startswith("("):
        return None
    close = _closing(text)
    if close is None or not text[close + 1 :].startswith("."):
        return None
    first = _simple_path(rtype, text[1:close])
    steps = text[close + 2 :].split(".")
    if first is None or not all(_STEP.match(s) for s in steps):
        return None

    def evaluate(resource: dict[str, Any]) -> list[Any]:
        nodes = first(resource)
        for step in steps:
            nodes = list(_children(nodes, step))
        return nodes

    return evaluate


def _closing(text: str) -> int | None:
    """Index of the parenthesis closing the one that opens ``text``."""
    depth = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


def _may_be_choice(rtype: str, steps: list[str]) -> bool:
    """Whether the last step can name a choice element (``value`` -> ``valueQuantity``), from the
    R4 structure: False only for a known plain element, whose absence then ends the search
    instead of a scan of every key (which also matched siblings such as ``statusReason``)."""
    try:
        current = structure.table(rtype)
    except KeyError:
        return True
    for step in steps[:-1]:
        field = current.fields.get(step)
        if field is None or field.table is None:
            return True  # a path the tables cannot follow: keep the general behaviour
        current = field.table
    return steps[-1] not in current.fields


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _navigator(steps: tuple[str, ...], wanted: str | None, choice: bool = True) -> Evaluate:
    *inner, last = steps

    def evaluate(resource: dict[str, Any]) -> list[Any]:
        nodes: list[Any] = [resource]
        for step in inner:
            nodes = list(_children(nodes, step))
        if wanted is not None:
            return list(_children(nodes, last + wanted[0].upper() + wanted[1:]))
        found = list(_children(nodes, last))
        if found or not choice:
            return found
        return list(_choice_children(nodes, last))  # a choice element: value -> valueQuantity

    return evaluate


def _children(nodes: Iterable[Any], key: str) -> Iterable[Any]:
    for node in nodes:
        if not isinstance(node, dict) or key not in node:
            continue
        value = node[key]
        if isinstance(value, list):
            yield from value
        else:
            yield value


def _choice_children(nodes: Iterable[Any], base: str) -> Iterable[Any]:
    size = len(base)
    for node in nodes:
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key.startswith(base) and len(key) > size and key[size].isupper():
                yield from value if isinstance(value, list) else [value]
