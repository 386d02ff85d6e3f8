"""SMART on FHIR scopes (v2 ``patient/Observation.rs``, v1 ``user/Patient.read``), parsed.

Only what a scope string grants is modelled: a context (patient, user, system), a resource type (or
``*``), a set of permission letters from ``cruds`` and, for granular v2 scopes
(``patient/Observation.rs?category=http://...|laboratory``), the query that narrows them. A
granular scope reaches only the resources its query matches, and only for reads and searches
(``authz.GRANULAR_INTERACTIONS``); a wildcard type with a query, or a malformed query, grants
nothing: ignoring the query would grant more than the authorization server meant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

CONTEXTS = ("patient", "user", "system")
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)$")
_V2_ORDER = "cruds"
# SMART v1 permissions in v2 letters: read = read + search, write = create + update + delete.
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
# Scopes that carry the break-glass permission (docs/security.md); either spelling is accepted.
BREAK_GLASS_SCOPES = frozenset({"break-glass", "system/break-glass"})


@dataclass(frozen=True)
class Grant:
    context: str  # patient | user | system
    resource_type: str  # a FHIR type or "*"
    permissions: frozenset[str]  # letters of "cruds"
    query: tuple[tuple[str, str], ...] = ()  # granular scopes: search parameters, all must match

    def covers(self, resource_type: str, letter: str, separate: frozenset[str]) -> bool:
        """Whether this grant allows ``letter`` on ``resource_type``; ``*`` reaches every type
        except the ``separate`` ones, which only a scope naming them grants."""
        if letter not in self.permissions:
            return False
        if self.resource_type == "*":
            return resource_type not in separate
        return self.resource_type == resource_type


def _letters(text: str) -> frozenset[str] | None:
    if text in _V1:
        return frozenset(_V1[text])
    # v2: a subsequence of "cruds" in that order, e.g. "rs", "cud"; anything else is malformed.
    position = 0
    for char in text:
        position = _V2_ORDER.find(char, position)
        if position < 0:
            return None
        position += 1
    return frozenset(text)


def _query(text: str) -> tuple[tuple[str, str], ...] | None:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=8)
    except ValueError:
        return None
    if not pairs or any(not name or not value for name, value in pairs):
        return None
    return tuple(pairs)


def parse_scope(scope: str) -> Grant | None:
    base, mark, text = scope.partition("?")
    match = _SCOPE.match(base)
    if match is None:
        return None
    letters = _letters(match.group(3))
    if not letters:
        return None
    if not mark:
        return Grant(match.group(1), match.group(2), letters)
    query = _query(text)
    if query is None or match.group(2) == "*":  # parameters are defined per type
        return None
    return Grant(match.group(1), match.group(2), letters, query)


def parse_scopes(scopes: Iterable[str]) -> tuple[Grant, ...]:
    return tuple(g for g in (parse_scope(s) for s in scopes) if g is not None)
