"""FHIR primitive types: the spec's regexes (from the shipped definitions) plus the server's rules.

Each check takes a JSON value and says whether it is a valid FHIR value of that type. The regexes
come from the R4 definitions (``definitions.data()["primitives"]``); where the server is stricter
than the regex, it says why (docs/fhir.md, "Validation").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from healthstack.core.dates import interval
from healthstack.fhir.definitions import data

# FHIR decimals have no stated range; ours stay far below float8's 1.8e308 so that sums and means
# of many values (``$stats``) can never overflow, and within the 28 significant digits that
# .NET's decimal and Java's BigDecimal-backed servers round-trip (docs/fhir.md).
MAX_DECIMAL = 1e28

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
REFERENCE_RE = re.compile(
    r"^((https?://\S+/)?[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?"
    r"|urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
# A reference to a contained resource ("#" alone: the container itself, from a contained one).
LOCAL_REFERENCE_RE = re.compile(r"#[A-Za-z0-9\-.]{0,64}")

# The spec's code regex allows any whitespace between words; its text says single spaces.
_CODE_RE = re.compile(r"[^\s]+( [^\s]+)*")
# JSON has no empty primitives: the spec's uri regex (\S*) would allow "".
_URI_RE = re.compile(r"\S+")

Check = Callable[[Any], bool]


def _text(v: Any) -> bool:
    # Whitespace-only strings carry no value; the JSON format forbids empty ones.
    return isinstance(v, str) and v.strip() != ""


def _regex(pattern: re.Pattern[str]) -> Check:
    return lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None


def _dated(pattern: re.Pattern[str]) -> Check:
    def check(v: Any) -> bool:
        if not isinstance(v, str) or pattern.fullmatch(v) is None:
            return False
        try:  # what validates must index and search: the same parser, range and leap seconds
            interval(v)
        except ValueError:
            return False
        return True

    return check


def _int(lo: int) -> Check:
    return lambda v: type(v) is int and lo <= v <= 2_147_483_647


def _decimal(v: Any) -> bool:
    return type(v) in (int, float) and abs(v) < MAX_DECIMAL  # NaN and infinities fail too


def _xhtml(v: Any) -> bool:
    return isinstance(v, str) and v.lstrip().startswith("<div")


# JSON types and the server's rules first; every other primitive is its spec regex.
_OVERRIDES: dict[str, Check] = {
    "boolean": lambda v: isinstance(v, bool),
    "integer": _int(-2_147_483_648),
    "unsignedInt": _int(0),
    "positiveInt": _int(1),
    "decimal": _decimal,
    "string": _text,
    "markdown": _text,
    "xhtml": _xhtml,
    "code": _regex(_CODE_RE),
    "uri": _regex(_URI_RE),
    "url": _regex(_URI_RE),
    "canonical": _regex(_URI_RE),
}
_DATED = ("date", "dateTime", "instant")


def checks() -> dict[str, Check]:
    """Primitive type code -> check, built once per process by the validator."""
    result: dict[str, Check] = {}
    for name, regex in data()["primitives"].items():
        if name in _OVERRIDES:
            result[name] = _OVERRIDES[name]
        elif name in _DATED:
            result[name] = _dated(re.compile(regex))
        else:
            result[name] = _regex(re.compile(regex))
    return result
