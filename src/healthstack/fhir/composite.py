"""Composite search parameters (``code-value-quantity=http://loinc.org|8480-6$gt140``).

A composite matches when one node of its base path (the Observation itself, or one of its
components) satisfies every component at once, which an index of separate values cannot say.
So SQL narrows by the first component (an ordinary indexed parameter of the type) and the exact
decision is made after decryption (``Query.post_filters``), on the node's FHIRPath values.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any

from healthstack.core.crypto import normalize
from healthstack.core.dates import interval
from healthstack.fhir import conditions, extract, searchdefs
from healthstack.fhir.query import Conditions, Query, bad

Matcher = Callable[[list[Any]], bool]


def add(parser: Conditions, query: Query, rtype: str, param: searchdefs.SearchParam, name: str,
        value: str) -> None:  # fmt: skip
    components = _components(rtype, param, name)
    alternatives = value.split(",")
    matchers = [_matchers(components, name, alt) for alt in alternatives]
    first, _ = components[0]
    if first.code and len(alternatives) == 1:  # narrow in SQL by the first component
        parser.condition(query, "r", rtype, first.code, alternatives[0].split("$", 1)[0])
    bases = [searchdefs.compile_path(rtype, p) for p in _base_paths(rtype, param)]

    def passes(resource: dict[str, Any]) -> bool:
        nodes = [n for base in bases for n in base(resource) if isinstance(n, dict)]
        return any(all(m(evaluate(n)) for m, evaluate in ms) for ms in matchers for n in nodes)

    query.post_filters.append(passes)


def _base_paths(rtype: str, param: searchdefs.SearchParam) -> list[str]:
    raw = searchdefs.raw_paths(rtype, param.code)
    return [p for p in raw if p.split(".", 1)[0].lstrip("(") == rtype] or [rtype]


def _components(
    rtype: str, param: searchdefs.SearchParam, name: str
) -> list[tuple[searchdefs.SearchParam, Callable[[dict[str, Any]], list[Any]]]]:
    out = []
    for ref, expression in param.components:
        component = searchdefs.param_by_id(rtype, ref)
        if component is None:
            raise bad(name, "this composite's components are not defined for the type")
        out.append((component, relative(expression)))
    return out


def relative(expression: str) -> Callable[[dict[str, Any]], list[Any]]:
    """A component's expression, evaluated on a node rather than on the resource."""
    members = [searchdefs.compile_path("Node", f"Node.{m.strip()}") for m in expression.split("|")]

    def evaluate(node: dict[str, Any]) -> list[Any]:
        return [v for member in members for v in member(node)]

    return evaluate


def _matchers(
    components: list[tuple[searchdefs.SearchParam, Callable[[dict[str, Any]], list[Any]]]],
    name: str, value: str,
) -> list[tuple[Matcher, Callable[[dict[str, Any]], list[Any]]]]:  # fmt: skip
    values = value.split("$")
    if len(values) != len(components) or not all(values):
        raise bad(name, f"expected {len(components)} values separated by $")
    return [(matcher(c.type, name, v), evaluate)
            for (c, evaluate), v in zip(components, values, strict=True)]  # fmt: skip


def matcher(kind: str, name: str, value: str) -> Matcher:
    if kind == "token":
        system, bar, code = value.rpartition("|")
        return lambda vs: any(c == code and (not bar or (s or "") == system)
                              for s, c in extract.token_pairs(vs))  # fmt: skip
    if kind in ("quantity", "number"):
        return _number(name, value)
    if kind == "date":
        prefix, text = conditions.split_prefix(name, value, conditions.DATE_PREFIXES)
        try:
            low, high = interval(text)
        except ValueError:
            raise bad(name, "expected a FHIR date or dateTime") from None
        return lambda vs: any(_date_ok(prefix, low, high, lo, hi)
                              for lo, hi, _ in extract.date_spans(vs))  # fmt: skip
    if kind == "string":
        wanted = normalize(value)
        return lambda vs: any(normalize(s).startswith(wanted) for s in extract.string_values(vs))
    if kind == "reference":
        wanted_type, wanted_id = conditions.reference_value(name, value, None)
        return lambda vs: any(
            target is not None and target[1] == wanted_id and wanted_type in (None, target[0])
            for target in map(extract.reference_target, vs)
        )
    raise bad(name, f"{kind} components are not supported in composites")


def _number(name: str, value: str) -> Matcher:
    prefix, text = conditions.split_prefix(name, value, conditions.NUMBER_PREFIXES)
    number, _, unit = text.partition("|")
    low, high = conditions.implicit_range(name, number)
    system, bar, code = unit.rpartition("|")
    unit_code = code if bar else unit

    def ok(found: decimal.Decimal) -> bool:
        return {"eq": low <= found < high, "ne": not low <= found < high, "lt": found < low,
                "gt": found >= high, "le": found < high, "ge": found >= low}[prefix]  # fmt: skip

    return lambda vs: any(
        ok(v) and (not unit_code or c == unit_code) and (not system or s == system)
        for v, s, c in extract.quantities(vs)
    )


def _date_ok(prefix: str, low: Any, high: Any, lo: Any, hi: Any) -> bool:
    return bool({"eq": lo >= low and hi <= high, "ne": lo < low or hi > high, "lt": lo < low,
                 "gt": hi > high, "le": lo < high, "ge": hi > low, "sa": lo >= high,
                 "eb": hi <= low}[prefix])  # fmt: skip
