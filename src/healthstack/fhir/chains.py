"""Searches that cross a reference: chains (``subject:Patient.name=x``) and ``_has`` (reverse).

One level each (FHIR allows more; deeper chains are a 400 naming the parameter). A chain or
``_has`` is a search of the type it looks into, and answers whether records of that type match: so
the caller needs search permission on that type from a scope without a query (``ops.parse_for``
checks :attr:`Query.inner_types`), and the records looked at are confined exactly as a search of
that type would be (:attr:`Query.confine`), whatever the confinement of the searched type. A
patient-context token cannot learn anything about another patient's records, nor a token whose
scopes hide a type anything about that type, by asking whether a chain matches.
"""

from __future__ import annotations

from healthstack.core.outcome import FhirError
from healthstack.fhir import searchdefs
from healthstack.fhir.query import Conditions, Query, parse_prefixed, range_condition

_ALIASES = ("c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8")


def bad(param: str, message: str) -> FhirError:
    return FhirError(400, "invalid", f"search parameter {param[:64]}: {message}")


def _alias(query: Query) -> str:
    query.depth += 1
    if query.depth > len(_ALIASES):
        raise FhirError(400, "too-costly", "too many chained or _has parameters in one search")
    return _ALIASES[query.depth - 1]


def _subquery(parser: Conditions, query: Query, rtype: str, name: str, value: str) -> str:
    """Ids of live ``rtype`` resources matching ``name=value`` (and the caller's compartment)."""
    alias = _alias(query)
    before = len(query.where)
    parser.condition(query, alias, rtype, name, value)
    condition = query.where.pop()
    if len(query.where) != before:
        raise bad(name, "cannot be used inside a chain")
    where = [f"{alias}.resource_type = {query.arg(rtype)}", f"NOT {alias}.deleted", condition]
    query.inner_types.add(rtype)
    patient = query.confine(rtype)
    if patient is not None:
        where.append(f"{alias}.compartment @> ARRAY[{query.arg(patient)}]::text[]")
    return f"SELECT {alias}.id FROM fhir_resource {alias} WHERE {' AND '.join(where)}"


def chain(parser: Conditions, query: Query, alias: str, rtype: str, name: str, value: str) -> str:
    """``ref[:Type].param=value``: resources whose ``ref`` points at a match."""
    base, _, rest = name.partition(".")
    if "." in rest.partition(":")[0] or alias != "r":
        raise bad(name, "chains deeper than one level are not supported")
    ref_name, _, type_modifier = base.partition(":")
    ref = searchdefs.params_of(rtype).get(ref_name)
    if ref is None or ref.type != "reference":
        raise bad(name, f"{ref_name!r} is not a reference parameter of {rtype}")
    targets = [type_modifier] if type_modifier else list(ref.targets)
    chained = rest.partition(":")[0]
    targets = [t for t in targets if chained in searchdefs.params_of(t) or chained == "_id"]
    if not targets:
        raise bad(name, f"no target type of {ref_name!r} has the parameter {chained!r}")
    if len(targets) > 1:
        raise bad(name, f"name the target type, e.g. {ref_name}:{targets[0]}.{chained}")
    inner = _subquery(parser, query, targets[0], rest, value)
    return (
        f"{alias}.id IN (SELECT i.id FROM fhir_search_reference i WHERE i.resource_type = "
        f"{query.arg(rtype)} AND i.param = {query.arg(ref_name)} AND i.target_type = "
        f"{query.arg(targets[0])} AND i.target IN ({inner}))"
    )


def has(parser: Conditions, query: Query, alias: str, rtype: str, name: str, value: str) -> str:
    """``_has:Type:ref:param=value``: resources that a matching ``Type`` points at via ``ref``."""
    parts = name.split(":")
    if len(parts) != 4 or alias != "r":
        raise bad("_has", "expected _has:Type:reference:parameter (one level)")
    _, source, ref_name, param = parts
    ref = searchdefs.params_of(source).get(ref_name)
    if ref is None or ref.type != "reference":
        raise bad("_has", f"{ref_name!r} is not a reference parameter of {source}")
    if ref.targets and rtype not in ref.targets:
        raise bad("_has", f"{source}.{ref_name} does not point at {rtype}")
    inner = _subquery(parser, query, source, param, value)
    return (
        f"{alias}.id IN (SELECT i.target FROM fhir_search_reference i WHERE i.resource_type = "
        f"{query.arg(source)} AND i.param = {query.arg(ref_name)} AND i.target_type = "
        f"{query.arg(rtype)} AND i.id IN ({inner}))"
    )


def column(query: Query, alias: str, name: str, value: str) -> str:
    """``_id`` and ``_lastUpdated`` inside a chain: the resource row's own columns."""
    if name == "_id":
        return f"{alias}.id = ANY({query.arg(value.split(','))})"
    if name == "_lastUpdated":
        prefix, span = parse_prefixed(name, value)
        column_name = f"{alias}.last_updated"
        return range_condition(query, prefix, span, column_name, column_name)
    raise bad(name, "modifiers are not supported on this parameter")
