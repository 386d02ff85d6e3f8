"""Dates and free text under Safe Harbor (45 CFR 164.514(b)(2)(i)).

Dates keep only their year (``days`` is None: Safe Harbor's letter, the default), or move by one
shift per request (intervals between them survive, the calendar does not; an Expert
Determination's choice, docs/ai.md); free
text loses every value the record itself identifies the patient by (names, MRNs, phones...: the
``known`` values), then every pattern that looks like an identifier of a listed class.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from healthstack.deid.placeholders import PLACEHOLDER, Placeholders

# FHIR date, dateTime and instant: YYYY, YYYY-MM, YYYY-MM-DD, then optional time and zone.
FHIR_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?$")
_ISO_IN_TEXT = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
# Years-only mode: a date with its time of day, a year-month, a month name with a year.
_ISO_TIME_IN_TEXT = re.compile(
    r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?|\b(\d{4})-(\d{2})\b"
)
_SLASH_MONTH_YEAR = re.compile(r"\b\d{1,2}/(\d{4})\b")
# 2024/03/01 is read as ISO; 01.03.2024 and 01-03-2024 (day or month first: ambiguous) cannot be
# shifted faithfully, so they keep the year or become "[date]".
_SLASHED_ISO = re.compile(r"\b(\d{4})/(\d{1,2})/(\d{1,2})\b")
_DAY_MONTH_YEAR = re.compile(r"\b\d{1,2}[.-]\d{1,2}[.-](\d{4})\b")
_US_IN_TEXT = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b")
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|"
    "december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_WORD_DATE = re.compile(
    rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\.?|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?)"
    r"(?:,?\s+\d{4})?\b",
    re.IGNORECASE,
)
_MONTH_YEAR = re.compile(rf"\b(?:{_MONTHS})\.?,?\s+(\d{{4}})\b", re.IGNORECASE)
NAME_CUES = (
    "son|daughter|wife|husband|spouse|partner|mother|father|mum|mom|dad|brother|sister|"
    "grandson|granddaughter|grandmother|grandfather|aunt|uncle|nephew|niece|cousin|friend|"
    "neighbour|neighbor|carer|caregiver|guardian|named|called|by|signed|patient|nurse|"
    "physician|doctor|contact|visitor|accompanied by"
)
# Identifier-shaped patterns, most specific first (each to a placeholder of its class).
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("URL", re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)),
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    # IPv4, full IPv6 and compressed IPv6 (times of day never hold "::").
    (
        "IP",
        re.compile(
            r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b"
            r"|(?:\b[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}\b(?::[0-9a-f]{1,4}\b)*)?",
            re.IGNORECASE,
        ),
    ),
    ("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("PHONE", re.compile(r"(?:\+?\d{1,3}[\s.-]?)?\(?\b\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}\b")),
    # Any other number or code: 5+ digits, or letters and 2+ digits mixed (MRN, VIN, licence, zip).
    (
        "ID",
        re.compile(
            r"\b(?=[A-Z0-9-]*\d[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9-]{5,}\b|\b\d{5,}\b",
            re.IGNORECASE,
        ),
    ),
    # A name after a title: the record may not list it (a relative, a neighbour).
    ("NAME", re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?")),
    # Capitalised words after a cue that a person follows ("her daughter Lucy Fairweather",
    # "seen by Anna"): conservative, so a capitalised clinical word after a cue goes too.
    (
        "NAME",
        re.compile(rf"\b(?i:{NAME_CUES})[\s:,]\s?(?P<v>[A-Z][\w'-]+(?:[ \t]+[A-Z][\w'-]+){{0,2}})"),
    ),
)
_OLD_AGE = re.compile(r"\b(?:9\d|1[0-4]\d)(?=[\s-]*(?:years?|yrs?|y/?o)\b)", re.IGNORECASE)


def shift_date(value: str, days: int | None) -> str | None:
    """A FHIR date/dateTime/instant moved by ``days`` at its own precision, or its year alone
    when ``days`` is None; a bare year is kept (Safe Harbor allows the year). None when
    ``value`` is not a date."""
    match = FHIR_DATE.match(value)
    if match is None:
        return None
    year, month, day, time = match.groups()
    if days is None:
        return year
    if month is None:
        return value
    try:
        moved = dt.date(int(year), int(month), int(day or 1)) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return year  # not a real calendar date: keep the year only
    if day is None:
        return f"{moved:%Y-%m}"
    return f"{moved:%Y-%m-%d}" + (time or "")


def _shift_iso(match: re.Match[str], days: int) -> str:
    return shift_date(match.group(0), days) or match.group(1)


def _shift_us(match: re.Match[str], days: int | None) -> str:
    month, day, year = (int(g) for g in match.groups())
    year += 1900 if year < 100 and year > 30 else 2000 if year < 100 else 0
    if days is None:
        return str(year)
    try:
        return f"{dt.date(year, month, day) + dt.timedelta(days=days):%Y-%m-%d}"
    except (ValueError, OverflowError):
        return "[date]"


class Known:
    """The record's identifying values as one pattern (built once per request)."""

    def __init__(self, values: Iterable[tuple[str, str]]) -> None:
        # Longest first: the alternation takes the first that matches, "John Smith" before "John".
        ordered = sorted(values, key=lambda kv: -len(kv[1]))
        self.by_lower = {value.lower(): (kind, value) for kind, value in reversed(ordered)}
        alternatives = "|".join(re.escape(value) for _kind, value in ordered)
        self.pattern = (
            re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if ordered else None
        )

    def replace(self, text: str, marks: Placeholders) -> str:
        if self.pattern is None:
            return text

        def mark(match: re.Match[str]) -> str:
            kind, value = self.by_lower[match.group(0).lower()]
            return marks.of(kind, value)

        return self.pattern.sub(mark, text)


def scrub(text: str, known: Known, days: int | None, marks: Placeholders) -> str:
    """Free text with known values, identifier patterns and dates replaced (see module doc)."""
    out = known.replace(text.replace("[[", "[ ["), marks)  # the record cannot forge a placeholder
    out = _SLASHED_ISO.sub(lambda m: "{}-{:0>2}-{:0>2}".format(*m.groups()), out)
    out = _DAY_MONTH_YEAR.sub(lambda m: m.group(1) if days is None else "[date]", out)
    if days is None:
        out = _ISO_TIME_IN_TEXT.sub(lambda m: m.group(1) or m.group(4), out)
    else:
        out = _ISO_IN_TEXT.sub(lambda m: _shift_iso(m, days), out)
    out = _US_IN_TEXT.sub(lambda m: _shift_us(m, days), out)
    out = _WORD_DATE.sub("[date]", out)  # "March 3rd": no year to shift from, so removed
    if days is None:
        out = _MONTH_YEAR.sub(lambda m: m.group(1), out)  # "March 2024": the year alone
        out = _SLASH_MONTH_YEAR.sub(lambda m: m.group(1), out)
    for kind, pattern in PATTERNS:
        out = _outside_placeholders(out, pattern, kind, marks)
    return _OLD_AGE.sub("90+", out)


def _outside_placeholders(
    text: str, pattern: re.Pattern[str], kind: str, marks: Placeholders
) -> str:
    """``pattern`` replaced in the text between placeholders, never inside one ("ID-12")."""
    parts = PLACEHOLDER.split(text)
    tokens = PLACEHOLDER.findall(text)

    def mark(match: re.Match[str]) -> str:
        if "v" not in pattern.groupindex:
            return marks.of(kind, match.group(0))
        keep = match.start("v") - match.start()  # the cue stays, the name goes
        return match.group(0)[:keep] + marks.of(kind, match.group("v"))

    out = [pattern.sub(mark, parts[0])]
    for (name, number), part in zip(tokens, parts[3::3], strict=True):
        out.append(f"[[{name}-{number}]]")
        out.append(pattern.sub(mark, part))
    return "".join(out)


def unshift_dates(text: str, days: int | None) -> str:
    """An answer's ISO dates moved back to the calendar (the inverse of this request's shift);
    years-only mode sent no day to move back."""
    if days is None:
        return text
    return _ISO_IN_TEXT.sub(lambda m: _shift_iso(m, -days), text)
