"""What a stored resource exposes to search: plaintext non-identifying columns and blind-index terms.

Terms are ``(kind, normalized value)`` pairs; ``store`` turns them into HMAC digests under the key
that encrypts the row. Name terms use ``crypto.normalize`` (case- and accent-insensitive) and cover
the whole name part and each of its words, so ``family=garcia`` matches "García-Lopez".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from healthstack.core.crypto import normalize
from healthstack.core.dates import interval

_WORDS = re.compile(r"[\s\-]+")


@dataclass
class Vital:
    code: str
    effective: dt.datetime
    value: float
    unit: str | None


@dataclass
class Extract:
    patient_id: str | None = None
    code: str | None = None
    codes: list[str] | None = None
    categories: list[str] | None = None
    effective_start: dt.datetime | None = None
    effective_end: dt.datetime | None = None
    gender: str | None = None
    terms: list[tuple[str, str]] = field(default_factory=list)
    vitals: list[Vital] = field(default_factory=list)


def name_terms(text: str) -> set[str]:
    whole = normalize(text)
    return {whole, *(w for w in _WORDS.split(whole) if w)} - {""}


def coding_terms(concepts: list[dict[str, Any]]) -> list[str]:
    """``system|code`` plus the bare ``code`` (FHIR token search without a system)."""
    out: list[str] = []
    for concept in concepts:
        for coding in concept.get("coding", ()):
            code = coding.get("code")
            if code:
                out += [f"{coding.get('system', '')}|{code}", code]
    return out


def patient_terms(resource: dict[str, Any]) -> list[tuple[str, str]]:
    terms: set[tuple[str, str]] = set()
    for ident in resource.get("identifier", ()):
        if "value" in ident:
            terms |= {
                ("identifier.sv", f"{ident.get('system', '')}|{ident['value'].strip()}"),
                ("identifier.v", ident["value"].strip()),
            }
    for name in resource.get("name", ()):
        family = name_terms(name["family"]) if "family" in name else set()
        given = set().union(*(name_terms(g) for g in name.get("given", ())))
        other = set().union(
            *(
                name_terms(t)
                for t in (name.get("text", ""), *name.get("prefix", ()), *name.get("suffix", ()))
                if t
            )
        )
        terms |= {("family", t) for t in family} | {("given", t) for t in given}
        terms |= {("name", t) for t in family | given | other}
    birth = resource.get("birthDate")
    if birth:
        terms |= {("birthdate", birth), ("birthyear", birth[:4])}
    return sorted(terms)


def _subject_patient(resource: dict[str, Any]) -> str | None:
    ref = resource.get("subject", {}).get("reference", "")
    if ref.startswith("Patient/") and ref.count("/") == 1:
        return str(ref[len("Patient/") :])
    return None


def _effective(resource: dict[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    text = resource.get("effectiveDateTime") or resource.get("effectiveInstant")
    if text:
        return interval(text)
    period = resource.get("effectivePeriod")
    if not period:
        return None, None
    start = interval(period["start"])[0] if "start" in period else None
    end = interval(period["end"])[1] if "end" in period else None
    return start, end


def observation_extract(resource: dict[str, Any]) -> Extract:
    codes = coding_terms([resource["code"]])
    start, end = _effective(resource)
    extract = Extract(
        patient_id=_subject_patient(resource),
        code=codes[0] if codes else None,
        codes=codes,
        categories=coding_terms(resource.get("category", [])),
        effective_start=start,
        effective_end=end,
    )
    quantity = resource.get("valueQuantity")
    if quantity and "value" in quantity and extract.patient_id and extract.code and start:
        unit = quantity.get("code") or quantity.get("unit")
        extract.vitals.append(Vital(extract.code, start, float(quantity["value"]), unit))
    return extract


def extract(resource_type: str, resource_id: str, resource: dict[str, Any]) -> Extract:
    """The dedicated columns of Patient and Observation; other types use only ``extract``'s
    generic index (and ``patient_id`` from their compartment)."""
    if resource_type == "Patient":
        return Extract(
            patient_id=resource_id, gender=resource.get("gender"), terms=patient_terms(resource)
        )
    if resource_type == "Observation":
        return observation_extract(resource)
    return Extract()
