"""Bulk Data kick-off parameters (``_type``, ``_since``, ``_typeFilter``, ``_outputFormat``),
validated before a job is queued: what the runner later reads back holds no client text beyond
type names, an instant and token filters on known parameters.

``_typeFilter`` takes ``Type?param=value[&...]`` with token parameters of the type (the same
subset a SMART granular scope may use, matched by :mod:`healthstack.fhir.granular`); several
filters for one type are alternatives. Anything else is refused (400), as the specification asks
of a server that cannot honour a filter rather than silently exporting more.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from healthstack.core.dates import interval
from healthstack.core.outcome import FhirError
from healthstack.fhir import granular, ops, phi, searchdefs

OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
MAX_FILTERS = 32
# Filters are comma-separated, and a token value may hold commas (any-of): split only where the
# next filter's type begins.
_FILTER_SPLIT = re.compile(r",(?=[A-Z][A-Za-z]*\?)")


def bad(name: str, message: str) -> FhirError:
    return FhirError(400, "invalid", f"$export parameter {name}: {message}")


@dataclass
class ExportParams:
    types: list[str] = field(default_factory=list)  # empty: every type the caller may read
    since: dt.datetime | None = None
    filters: dict[str, list[list[tuple[str, str]]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        since = self.since.isoformat() if self.since else None
        filters = {t: [list(map(list, f)) for f in fs] for t, fs in self.filters.items()}
        return {"types": self.types, "since": since, "filters": filters}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportParams:
        since = dt.datetime.fromisoformat(data["since"]) if data.get("since") else None
        filters = {t: [[(str(n), str(v)) for n, v in f] for f in fs]
                   for t, fs in data.get("filters", {}).items()}  # fmt: skip
        return cls(list(data.get("types", [])), since, filters)


def parse(params: Sequence[tuple[str, str]]) -> ExportParams:
    out = ExportParams()
    for name, value in params:
        if name == "_type":
            out.types += [_known_type(t.strip()) for t in value.split(",") if t.strip()]
        elif name == "_since":
            out.since = _instant(value)
        elif name == "_typeFilter":
            for item in _FILTER_SPLIT.split(value):
                _type_filter(out, item)
        elif name == "_outputFormat":
            if value not in OUTPUT_FORMATS:
                raise bad("_outputFormat", "this server writes application/fhir+ndjson only")
        else:
            raise bad(name[:64], "not supported (supported: _type, _since, _typeFilter, "
                      "_outputFormat)")  # fmt: skip
    out.types = sorted(set(out.types))
    if out.types:
        stray = sorted(set(out.filters) - set(out.types))
        if stray:
            raise bad("_typeFilter", f"filters {stray[0]}, which _type does not ask for")
    return out


def from_parameters(body: Any) -> list[tuple[str, str]]:
    """A POST kick-off's ``Parameters`` resource as (name, value) pairs."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "a POST $export takes a Parameters resource")
    pairs = []
    for entry in body.get("parameter", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise FhirError(400, "invalid", "each Parameters.parameter needs a name")
        values = [v for k, v in entry.items() if k.startswith("value") and isinstance(v, str)]
        if len(values) != 1:
            raise bad(entry["name"][:64], "needs one string, instant or code value")
        pairs.append((entry["name"], values[0]))
    return pairs


def _known_type(rtype: str) -> str:
    try:
        ops.check_type(rtype)
    except FhirError:
        raise bad("_type", f"unknown resource type {rtype[:64]!r}") from None
    return rtype


def _instant(value: str) -> dt.datetime:
    if "T" not in value:
        raise bad("_since", "expected a FHIR instant (with a time and a time zone)")
    try:
        return interval(value)[0]
    except ValueError:
        raise bad("_since", "expected a FHIR instant (with a time and a time zone)") from None


def _type_filter(out: ExportParams, item: str) -> None:
    rtype, mark, query = item.partition("?")
    rtype = _known_type(rtype)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, max_num_fields=8)
    except ValueError:
        raise bad("_typeFilter", f"the {rtype} query is not name=value pairs") from None
    if not mark or not pairs:
        raise bad("_typeFilter", f"the {rtype} filter has no query")
    params = searchdefs.params_of(rtype)
    for name, value in pairs:
        if not granular.supported(rtype, ((name, value),)) or not value:
            shown = name if name in params else "an unknown parameter"
            raise bad("_typeFilter", f"{rtype}: {shown} is not supported (token parameters only)")
        if not phi.token_is_plain(name):  # the job row would keep an MRN or phone in clear
            raise bad("_typeFilter", f"{rtype}: {name} is identifying; not supported in exports")
    filters = out.filters.setdefault(rtype, [])
    if len(filters) >= MAX_FILTERS:
        raise bad("_typeFilter", f"at most {MAX_FILTERS} filters per type")
    filters.append(pairs)
