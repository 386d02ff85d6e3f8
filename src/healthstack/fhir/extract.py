"""Index values of any resource, from its type's search parameters (``searchdefs``).

Each parameter's FHIRPath values are turned into rows by the parameter's type: tokens
``(system, code)``, strings (normalized, with every prefix of every word for starts-with),
references ``(type, id)``, date intervals, numbers and quantities. Whether a row is plain or a
keyed digest is :mod:`healthstack.fhir.phi`'s decision. Patient and Observation also keep their
older dedicated columns (``NATIVE``), which top-level searches of those types use.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
from dataclasses import dataclass, field
from typing import Any

from healthstack.core.crypto import normalize
from healthstack.core.dates import interval
from healthstack.fhir import phi, searchdefs

# Parameters answered from fhir_resource's own columns, for every type or for these two.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})
NATIVE: dict[str, frozenset[str]] = {
    "Patient": frozenset({"identifier", "family", "given", "name", "birthdate", "gender"}),
    "Observation": frozenset({"patient", "subject", "code", "category", "date"}),
}
MAX_PREFIX = 32  # longer strings are searchable by their first 32 characters' prefixes


@dataclass
class Rows:
    tokens: list[tuple[str, str | None, str]] = field(default_factory=list)
    strings: list[tuple[str, str, str]] = field(default_factory=list)  # param, normalized, raw
    dates: list[tuple[str, dt.datetime, dt.datetime]] = field(default_factory=list)
    numbers: list[tuple[str, decimal.Decimal, str | None, str | None]] = field(default_factory=list)
    references: list[tuple[str, str | None, str]] = field(default_factory=list)  # type, id/url
    terms: list[tuple[str, str]] = field(default_factory=list)  # (kind, value) -> digests
    compartment: list[str] = field(default_factory=list)


@functools.cache
def extracted_params(rtype: str) -> tuple[searchdefs.SearchParam, ...]:
    # Native parameters are indexed here too: top-level searches use the columns, while chains,
    # _has and _include walk these tables whatever the type.
    return tuple(p for code, p in searchdefs.params_of(rtype).items() if code not in COLUMN_PARAMS)


def rows_of(rtype: str, rid: str, resource: dict[str, Any]) -> Rows:
    rows = Rows()
    for param in extracted_params(rtype):
        if param.type == "composite":
            continue  # decided after decryption from the components (search.composite)
        values = param.values(resource)
        if values:
            _add(rows, rtype, param, values)
    rows.compartment = compartment_of(rtype, rid, resource)
    return rows


def compartment_of(rtype: str, rid: str, resource: dict[str, Any]) -> list[str]:
    """The patients whose compartment holds this resource (official CompartmentDefinition)."""
    patients = [rid] if rtype == "Patient" else []
    params = searchdefs.params_of(rtype)
    for code in searchdefs.compartment_params(rtype):
        param = params.get(code)
        if param is None:
            continue
        for value in param.values(resource):
            target = reference_target(value)
            if target is not None and target[0] == "Patient" and target[1] not in patients:
                patients.append(target[1])
    return patients


def reference_target(value: Any) -> tuple[str, str] | None:
    """``(type, id)`` of a relative or absolute literal reference, else None."""
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str):
        return None
    parts = ref.split("/_history/", 1)[0].rstrip("/").split("/")
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return parts[-2], parts[-1]


def _add(rows: Rows, rtype: str, param: searchdefs.SearchParam, values: list[Any]) -> None:
    kind = param.type
    if kind == "token":
        for system, code in token_pairs(values):
            if phi.token_is_plain(param.code):
                rows.tokens.append((param.code, system, code))
            else:
                rows.terms += token_terms(param.code, system, code)
        if not phi.token_is_plain(param.code):
            rows.terms += of_type_terms(param.code, values)
        rows.terms += text_terms(param.code, values)
    elif kind == "string":
        for text in string_values(values):
            if phi.string_is_plain(rtype):
                rows.strings.append((param.code, normalize(text), text))
            else:
                rows.terms += string_terms(param.code, text)
    elif kind == "reference":
        for value in values:
            _reference(rows, param.code, value)
    elif kind == "date":
        for low, high, text in date_spans(values):
            if phi.date_is_plain(param.code):
                rows.dates.append((param.code, low, high))
            else:
                rows.terms += [(f"d:{param.code}", text[:10]), (f"y:{param.code}", text[:4])]
    elif kind in ("number", "quantity"):
        rows.numbers += [(param.code, *q) for q in quantities(values)]
    elif kind == "uri":
        rows.tokens += [(param.code, None, v) for v in values if isinstance(v, str)]


def token_pairs(values: list[Any]) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for value in values:
        if isinstance(value, bool):
            out.append((None, "true" if value else "false"))
        elif isinstance(value, str | int):
            out.append((None, str(value)))
        elif isinstance(value, dict):
            codings = value.get("coding") if "coding" in value else [value]
            for coding in codings if isinstance(codings, list) else []:
                code = coding.get("code", coding.get("value")) if isinstance(coding, dict) else None
                if isinstance(code, str) and code:
                    system = coding.get("system")
                    out.append((system if isinstance(system, str) else None, code))
    return out


def of_type_terms(code: str, values: list[Any]) -> list[tuple[str, str]]:
    """``identifier:of-type=system|code|value``: the identifier's type coding with its value."""
    out = []
    for value in values:
        if not isinstance(value, dict) or not isinstance(value.get("value"), str):
            continue
        for coding in (value.get("type") or {}).get("coding") or []:
            if isinstance(coding, dict) and coding.get("system") and coding.get("code"):
                out.append((f"ot:{code}", f"{coding['system']}|{coding['code']}|{value['value']}"))
    return out


MAX_TEXT_WORDS = (
    32  # per coded value: a display or text longer than this is searchable by its start
)


def text_words(text: str) -> list[str]:
    """The words ``:text`` matches: normalized (case, accents), hyphens split, in order."""
    return normalize(text).replace("-", " ").split()[:MAX_TEXT_WORDS]


def text_terms(code: str, values: list[Any]) -> list[tuple[str, str]]:
    """``code:text=...``: each word of a CodeableConcept's text and its codings' displays.

    Kept as keyed digests, never plain: ``CodeableConcept.text`` is free text a clinician typed and
    may name a person. Whole words only (no prefixes) keeps this to a few digests per coding.
    """
    texts: list[str] = []
    for value in values:
        if not isinstance(value, dict):
            continue
        texts.append(value.get("text", ""))
        codings = value.get("coding") if "coding" in value else [value]
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict):
                texts.append(coding.get("display", ""))
    words = {word for text in texts if isinstance(text, str) for word in text_words(text)}
    return [(f"tx:{code}", word) for word in sorted(words)]


def token_terms(code: str, system: str | None, value: str) -> list[tuple[str, str]]:
    """Digest kinds for an identifying token: value alone, and system|value."""
    return [(f"t:{code}", value), (f"ts:{code}", f"{system or ''}|{value}")]


_NAME_PARTS = ("family", "given", "text", "prefix", "suffix")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def string_values(values: list[Any]) -> list[str]:
    out: list[str] = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for part in (*_NAME_PARTS, *_ADDRESS_PARTS):
                item = value.get(part)
                items = item if isinstance(item, list) else [item]
                out += [i for i in items if isinstance(i, str)]
    return [v for v in out if v.strip()]


def string_terms(code: str, text: str) -> list[tuple[str, str]]:
    """Starts-with as equality of digests: every prefix of the whole value and of each word."""
    whole = normalize(text)
    terms = {(f"x:{code}", text)}  # :exact
    for word in {whole, *whole.replace("-", " ").split()}:
        for end in range(1, min(len(word), MAX_PREFIX) + 1):
            terms.add((f"s:{code}", word[:end]))
    return sorted(terms)


def _reference(rows: Rows, code: str, value: Any) -> None:
    if isinstance(value, str):  # canonical
        rows.references.append((code, None, value))
        return
    target = reference_target(value)
    if target is not None:
        rows.references.append((code, target[0], target[1]))


def date_spans(values: list[Any]) -> list[tuple[dt.datetime, dt.datetime, str]]:
    out = []
    for value in values:
        if isinstance(value, str):
            low, high = interval(value)
            out.append((low, high, value))
        elif isinstance(value, dict):
            start, end = value.get("start"), value.get("end")
            events = value.get("event")
            if isinstance(events, list):
                out += date_spans(events)
            if isinstance(start, str) or isinstance(end, str):
                low = interval(start)[0] if isinstance(start, str) else dt.datetime.min.replace(
                    tzinfo=dt.UTC)  # fmt: skip
                high = interval(end)[1] if isinstance(end, str) else dt.datetime.max.replace(
                    tzinfo=dt.UTC)  # fmt: skip
                out.append((low, high, start if isinstance(start, str) else str(end)))
    return out


def quantities(values: list[Any]) -> list[tuple[decimal.Decimal, str | None, str | None]]:
    out: list[tuple[decimal.Decimal, str | None, str | None]] = []
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append((decimal.Decimal(str(value)), None, None))
        elif isinstance(value, dict) and isinstance(value.get("value"), int | float):
            unit = value.get("code") or value.get("unit")
            system = value.get("system")
            out.append((decimal.Decimal(str(value["value"])),
                        system if isinstance(system, str) else None,
                        unit if isinstance(unit, str) else None))  # fmt: skip
    return out
