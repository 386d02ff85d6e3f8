"""``_sort`` on any sortable parameter, several keys, with keyset paging that survives inserts.

Each key is an expression over the resource row: its own columns (``_id``, ``_lastUpdated``) or
the smallest (ascending) / largest (descending) indexed value of a parameter. Missing values sort
last in either direction (coalesced to a sentinel), text compares in the C collation, and the id
breaks ties, so the order is total and the next page starts strictly after the last row served,
whatever was inserted meanwhile. Identifying parameters (kept as digests) cannot be sorted.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, Protocol

from healthstack.fhir import phi, searchdefs
from healthstack.fhir.query import TABLE, SortKey, bad


class Arguments(Protocol):
    """The query as sort keys see it (``query.Query``): its type and a place for arguments."""

    resource_type: str

    def arg(self, value: Any) -> str: ...


MAX_KEYS = 3
# (column of the index table, SQL type) per parameter kind; dates sort by their start (asc) or
# end (desc), as FHIR asks.
COLUMNS = {"date": ("low", "high", "timestamptz"), "string": ("normalized", None, "text"),
           "token": ("code", None, "text"), "uri": ("code", None, "text"),
           "reference": ("target", None, "text"), "number": ("value", None, "numeric"),
           "quantity": ("value", None, "numeric")}  # fmt: skip
SENTINELS = {"timestamptz": ("'infinity'::timestamptz", "'-infinity'::timestamptz"),
             "numeric": ("'Infinity'::numeric", "'-Infinity'::numeric"),
             "text": ("chr(1114111)", "''")}  # fmt: skip


def parse(query: Arguments, value: str) -> list[SortKey]:
    names = [n.strip() for n in value.split(",")]
    if not names or len(names) > MAX_KEYS or not all(names):
        raise bad("_sort", f"one to {MAX_KEYS} parameters, comma-separated")
    return [_key(query, name) for name in names]


def _key(query: Arguments, raw: str) -> SortKey:
    descending, name = raw.startswith("-"), raw.lstrip("-")
    if name == "_id":
        return SortKey('r.id COLLATE "C"', descending, "text")
    if name == "_lastUpdated":
        return SortKey("r.last_updated", descending, "timestamptz")
    rtype = query.resource_type
    param = searchdefs.params_of(rtype).get(name)
    if param is None or param.type not in COLUMNS:
        raise bad("_sort", f"{name[:64]!r} is not a sortable parameter of {rtype}")
    if _identifying(rtype, param):
        raise bad("_sort", f"{name} is kept only as keyed digests and cannot be sorted")
    ascending_column, descending_column, sql_type = COLUMNS[param.type]
    column = (descending_column or ascending_column) if descending else ascending_column
    collate = ' COLLATE "C"' if sql_type == "text" else ""
    extreme = "max" if descending else "min"
    high, low = SENTINELS[sql_type]
    inner = (f"(SELECT {extreme}(s.{column}{collate}) FROM {TABLE[param.type]} s WHERE "
             f"s.resource_type = r.resource_type AND s.id = r.id AND s.param = "
             f"{query.arg(param.code)})")  # fmt: skip
    return SortKey(f"coalesce({inner}, {low if descending else high})", descending, sql_type)


def _identifying(rtype: str, param: searchdefs.SearchParam) -> bool:
    return (
        (param.type == "token" and not phi.token_is_plain(param.code))
        or (param.type == "string" and not phi.string_is_plain(rtype))
        or (param.type == "date" and not phi.date_is_plain(param.code))
    )


def select(keys: list[SortKey]) -> str:
    return "".join(f", {k.sql} AS sort{n}" for n, k in enumerate(keys))


def order(keys: list[SortKey]) -> str:
    parts = [f"sort{n} {'DESC' if k.descending else 'ASC'}" for n, k in enumerate(keys)]
    return ", ".join([*parts, 'r.id COLLATE "C" ASC'])


def after(query: Arguments, keys: list[SortKey], position: list[Any]) -> str:
    """Rows strictly after ``position`` (the sort values and id of the last row served)."""
    *values, rid = position
    clauses: list[str] = []
    equal: list[str] = []
    for key, value in zip(keys, values, strict=True):
        bound = f"{query.arg(_decode(key.type, value))}::{key.type}"
        clauses.append(
            " AND ".join([*equal, f"{key.sql} {'<' if key.descending else '>'} {bound}"])
        )
        equal.append(f"{key.sql} = {bound}")
    clauses.append(" AND ".join([*equal, f'r.id COLLATE "C" > {query.arg(rid)}']))
    return "(" + " OR ".join(f"({c})" for c in clauses) + ")"


def position(keys: list[SortKey], row: Any) -> list[Any]:
    return [*(_encode(row[f"sort{n}"]) for n in range(len(keys))), row["id"]]


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _decode(sql_type: str, value: Any) -> Any:
    if sql_type == "timestamptz":
        text = str(value)
        if text in ("infinity", "-infinity"):
            return dt.datetime.max.replace(tzinfo=dt.UTC) if text == "infinity" else \
                dt.datetime.min.replace(tzinfo=dt.UTC)  # fmt: skip
        return dt.datetime.fromisoformat(text)
    if sql_type == "numeric":
        return decimal.Decimal(str(value))
    return str(value)
