"""De-identification of FHIR JSON by HIPAA Safe Harbor, 45 CFR 164.514(b)(2).

Pure functions: resources in, a de-identified copy and a re-identification map out. The 18 classes
are handled by structure where FHIR gives them a place (names, address, telecom, identifier,
photo, attachments, device ids, ids and references, dates, ages), and in every remaining string
by :func:`healthstack.deid.text.scrub` (the record's own identifying values, then patterns).
See docs/ai.md for the element-by-element rules and their tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from healthstack.deid.collect import known_values
from healthstack.deid.placeholders import Placeholders
from healthstack.deid.text import Known, scrub, shift_date

# Elements dropped wherever they occur: identifiers of every kind, contact points, pictures,
# narrative and extensions (free-form by design: anything can hide in them).
DROPPED = frozenset(
    {
        "identifier",
        "telecom",
        "photo",
        "contact",
        "link",
        "extension",
        "modifierExtension",
        "meta",
        "implicitRules",
        "contained",
        "udiCarrier",
        "serialNumber",
        "lotNumber",
        "distinctIdentifier",
        "url",
        "data",
        "hash",
        "signature",
        "qualification",
        "endpoint",
        "masterIdentifier",
        "relatesTo",
        "securityLabel",
        "source",
        "fullUrl",
        "position",
    }
)
# Address parts kept: a state is the smallest geographic unit Safe Harbor allows.
ADDRESS_KEPT = ("state", "country", "use", "type")
# Strings kept verbatim (terminology and control values, never free text). Still replaced when
# a whole value equals an identifying value of the record.
CODED = frozenset(
    {
        "resourceType",
        "system",
        "code",
        "status",
        "use",
        "gender",
        "unit",
        "comparator",
        "language",
        "contentType",
        "intent",
        "priority",
        "type",
        "valueCode",
        "docStatus",
        "mode",
        "kind",
    }
)
# HumanName lists: the whole element goes; a reference elsewhere says "the patient".
NAME_LISTS = frozenset({"name"})
# A Coding's display is a terminology's text: only the record's own values are removed from it.
CODING_DISPLAY = "display (Coding)"
OLDEST_AGE = 89  # 164.514(b)(2)(i)(C): ages over 89 aggregate into "90 or older"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Deidentified:
    resources: list[dict[str, Any]]
    reid: dict[str, str]  # placeholder -> original value; in memory only
    shift_days: int | None  # None: dates kept their year only


def deidentify(
    resources: list[dict[str, Any]],
    shift_days: int | None,
    today: dt.date,
    names_from: Sequence[dict[str, Any]] = (),
) -> Deidentified:
    """De-identified copies of ``resources``; ``shift_days`` (non-zero, per request) moves
    every date, None keeps only every date's year (Safe Harbor's letter); ``today`` decides who
    is over 89. ``names_from`` (people and organisations the record refers to, never sent)
    only add their names and other identifying values to what free text loses."""
    if shift_days == 0:
        raise ValueError("a zero date shift would keep every date")
    marks = Placeholders()
    walker = _Walker(marks, known_values([*resources, *names_from]), shift_days, today)
    out = [walker.resource(r) for r in resources]
    return Deidentified(out, dict(marks.reid), shift_days)


class _Walker:
    def __init__(
        self,
        marks: Placeholders,
        known: list[tuple[str, str]],
        days: int | None,
        today: dt.date,
    ) -> None:
        self.marks, self.days, self.today = marks, days, today
        self.known = Known(known)
        self.whole = {value.lower(): kind for kind, value in known}

    def resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.mapping(resource, "")
        if "birthDate" in resource:  # Patient, RelatedPerson (a relative's age), Practitioner...
            out.pop("birthDate", None)
            born = str(resource["birthDate"])
            if self._over_89(born):
                out["ageGroup"] = "90 or older"  # no birth year either
            else:
                out["birthDate"] = shift_date(born, self.days) or born[:4]
        return out

    def _over_89(self, born: str) -> bool:
        try:
            year = int(born[:4])
        except ValueError:
            return True  # unreadable: the safe answer
        if self.days is None:  # the year is sent: aggregate when it alone could mean over 89
            return self.today.year - year > OLDEST_AGE
        month_day = born[5:10] if len(born) >= 10 else "01-01"
        age = self.today.year - year - (f"{self.today:%m-%d}" < month_day)
        return age > OLDEST_AGE

    def node(self, value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return self.mapping(value, key)
        if isinstance(value, list):
            return [self.node(item, key) for item in value]
        if isinstance(value, str):
            return self.string(value, key)
        return value  # numbers and booleans carry no identifier by themselves

    def mapping(self, value: dict[str, Any], key: str) -> dict[str, Any]:
        if key == "address" or key.endswith("Address"):
            return {k: self.string(value[k], "code") for k in ADDRESS_KEPT if k in value}
        if _is_old_age(value):
            return {
                "value": OLDEST_AGE + 1,
                "comparator": ">=",
                "unit": "years",
                "system": UCUM,
                "code": "a",
            }
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in DROPPED or (k in NAME_LISTS and isinstance(v, list)):
                continue
            if k == "text" and isinstance(v, dict):
                continue  # the Narrative: free-form XHTML
            coded_display = k == "display" and "code" in value and "system" in value
            out[k] = self.node(v, CODING_DISPLAY if coded_display else k)
        return out

    def string(self, value: str, key: str) -> str:
        if key in ("id", "reference"):
            return self.reference(value)
        kind = self.whole.get(value.lower())
        if kind is not None:
            return self.marks.of(kind, value)
        if key in CODED:
            return value  # before dates: a code such as "1234-56" is not a date
        if key == CODING_DISPLAY:  # terminology text ("COVID-19 vaccine"): the record's values only
            return self.known.replace(value.replace("[[", "[ ["), self.marks)
        shifted = shift_date(value, self.days)
        if shifted is not None:
            return shifted
        return scrub(value, self.known, self.days, self.marks)

    def reference(self, value: str) -> str:
        """``Type/id`` keeps its type; the id (server-assigned or an MRN) is a placeholder."""
        rtype, slash, rid = value.rpartition("/")
        if slash and rtype.isalpha() and rtype[:1].isupper():
            return f"{rtype}/{self.marks.of('RES', rid)}"
        return self.marks.of("RES", value)


def _is_old_age(value: dict[str, Any]) -> bool:
    """An Age (UCUM years) over 89: aggregated like the birth date it stands for."""
    number = value.get("value")
    return (
        value.get("system") == UCUM
        and value.get("code") == "a"
        and isinstance(number, int | float)
        and number > OLDEST_AGE
    )
