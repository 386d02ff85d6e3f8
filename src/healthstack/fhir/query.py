"""What a parsed search is (:class:`Query`), shared by the parser and its condition builders.

Kept apart from :mod:`healthstack.fhir.search` so that ``conditions``, ``chains``, ``composite``
and ``sorting`` depend on this module and the parser depends on them, with no import circle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from healthstack.core.dates import interval
from healthstack.core.outcome import FhirError
from healthstack.fhir import shaping

DEFAULT_COUNT = 20
MAX_COUNT = 100
PREFIXES = ("eq", "lt", "gt", "le", "ge")
# The index table of each parameter kind (migration 0007).
TABLE = {"token": "fhir_search_token", "uri": "fhir_search_token", "string": "fhir_search_string",
         "date": "fhir_search_date", "number": "fhir_search_number",
         "quantity": "fhir_search_number", "reference": "fhir_search_reference"}  # fmt: skip


@dataclass(frozen=True)
class SortKey:
    sql: str  # over alias r, NULLs already coalesced
    descending: bool
    type: str  # timestamptz | numeric | text


Interval = tuple[dt.datetime, dt.datetime]
PostFilter = Callable[[dict[str, Any]], bool]
# The patient a search of a type is confined to for this caller (None: unconfined); chains and
# _has apply it to the type they look into, which need not be the searched type's confinement.
Confinement = Callable[[str], "str | None"]


def unconfined(_resource_type: str) -> str | None:
    return None


def bad(param: str, message: str) -> FhirError:
    # Names the parameter, never its value (values may be PHI).
    return FhirError(400, "invalid", f"search parameter {param}: {message}")


@dataclass
class Query:
    resource_type: str
    params: list[tuple[str, str]]  # the validated request, kept for the page cursor
    count: int = DEFAULT_COUNT
    sort: str = "_id"
    sort_keys: list[SortKey] = field(default_factory=list)  # generic _sort (sorting.py)
    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    post_filters: list[PostFilter] = field(default_factory=list)
    confined_to: str | None = None  # the caller's compartment for resource_type
    # The confinement of each type a chain or _has looks into, and the types looked into (each
    # needs its own search permission: ops.parse_for authorizes them).
    confine: Confinement = unconfined
    inner_types: set[str] = field(default_factory=set)
    shape: shaping.Shape = field(default_factory=shaping.Shape)
    ignored: list[str] = field(default_factory=list)  # lenient handling: names left out
    depth: int = 0  # subqueries opened by chains and _has (each gets its own alias)

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


class Conditions(Protocol):
    """The parser as condition builders see it (``search.Parser``): add ``name=value`` on an alias."""

    def condition(self, query: Query, alias: str, rtype: str, name: str, value: str) -> None: ...


def parse_prefixed(param: str, raw: str) -> tuple[str, Interval]:
    has_prefix = raw[:2].isalpha()
    prefix, text = (raw[:2], raw[2:]) if has_prefix else ("eq", raw)
    if prefix not in PREFIXES:
        raise bad(param, f"prefix {prefix!r} is not supported (use eq, lt, gt, le, ge)")
    try:
        return prefix, interval(text)
    except ValueError:
        raise bad(
            param, "expected a FHIR date or dateTime (with a time zone if it has a time)"
        ) from None


def range_condition(query: Query, prefix: str, value: Interval, start: str, end: str) -> str:
    """FHIR date-range semantics: the resource's [start, end) against the value's [ps, pe)."""
    ps, pe = value
    if prefix == "eq":
        return f"({start} >= {query.arg(ps)} AND {end} <= {query.arg(pe)})"
    column, op, bound = {
        "lt": (start, "<", ps),
        "gt": (end, ">", pe),
        "le": (start, "<", pe),
        "ge": (end, ">", ps),
    }[prefix]
    return f"{column} {op} {query.arg(bound)}"


def interval_matches(prefix: str, value: Interval, resource: Interval) -> bool:
    (ps, pe), (rs, re_) = value, resource
    return {
        "eq": rs >= ps and re_ <= pe,
        "lt": rs < ps,
        "gt": re_ > pe,
        "le": rs < pe,
        "ge": re_ > ps,
    }[prefix]
