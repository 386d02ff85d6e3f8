"""What docs/security.md promises, written as an oracle independent of the code under test.

Given a token (scopes, patient context, break-glass state), an interaction, a resource type and
whose record it touches, :func:`expect` says what the API must answer. It parses scopes itself
(no import from ``healthstack.security``): a bug in the service's scope parser cannot hide here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

SEPARATE = ("AuditEvent", "Plugin")  # a wildcard never reaches these
# The interaction letter each interaction needs (docs/security.md, "Authorization").
LETTER = {
    "read": "r", "vread": "r", "history": "r", "batch-read": "r",
    "search": "s", "lastn": "s", "stats": "s", "chained-search": "s",
    "create": "c", "transaction-create": "c", "conditional-create": "c",
    "update": "u", "conditional-update": "u", "delete": "d", "evaluate": "r",
}  # fmt: skip
# Break-glass widens reads only: "It never grants create, update or delete".
READ_SIDE = frozenset(
    {"read", "vread", "history", "batch-read", "search", "lastn", "stats", "evaluate",
     "chained-search"}
)  # fmt: skip
# A chained or _has search (`Patient?_has:Observation:subject:code=...`,
# `Observation?subject:Patient.gender=...`) also searches the type it looks into: that needs a
# search permission without a query (docs/security.md, "Chains and _has").
INNER = {"Patient": "Observation", "Observation": "Patient"}
V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.+))?$")
# Granular scopes (`patient/Observation.rs?category=...`): reads and searches only, and only the
# records their query matches; a wildcard type with a query grants nothing.
GRANULAR_SIDE = frozenset({"read", "vread", "search", "batch-read", "chained-search"})
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
# The token values of the records the matrix reads (its World creates exactly these), per
# parameter a granular scope may name; any other parameter cannot be enforced, so matches nothing.
TARGET_TOKENS: dict[str, dict[str, list[tuple[str | None, str]]]] = {
    "Observation": {"category": [(CATEGORY_SYSTEM, "vital-signs")],
                    "code": [("http://loinc.org", "8867-4")], "status": [(None, "final")]},
    "Patient": {"gender": [(None, "other")]},
}  # fmt: skip


@dataclass(frozen=True)
class Token:
    scopes: tuple[str, ...]
    own: bool  # the token carries a patient claim (the "own" patient)
    glass: str  # "none" | "reason" (a valid reason, with the permission) | "empty"


@dataclass(frozen=True)
class Expect:
    status: int
    sees_target: bool = False  # for searches: the target's record is in the Bundle


def _letters(text: str) -> str:
    if text in V1:
        return V1[text]
    order = "cruds"
    position = 0
    for char in text:
        position = order.find(char, position)
        if position < 0:
            return ""
        position += 1
    return text


def _covering(token: Token, rtype: str, letter: str) -> list[str | None]:
    """The query of each scope granting ``letter`` on ``rtype`` (None: a scope without one)."""
    found: list[str | None] = []
    for scope in token.scopes:
        match = _SCOPE.match(scope)
        if match is None:
            continue
        context, kind, perms, query = match.groups()
        if context == "patient" and (not token.own or rtype in SEPARATE):
            continue  # patient/ scopes without a patient claim grant nothing
        if kind not in (rtype, "*") or (kind == "*" and rtype in SEPARATE):
            continue
        if query is not None and kind == "*":
            continue
        if letter in _letters(perms):
            found.append(query)
    return found


def scope_grants(token: Token, rtype: str, letter: str) -> bool:
    """Whether the scopes alone grant ``letter`` on ``rtype`` (to every record)."""
    return None in _covering(token, rtype, letter)


def granular_queries(token: Token, rtype: str, interaction: str) -> list[str]:
    if interaction not in GRANULAR_SIDE:
        return []
    return [q for q in _covering(token, rtype, LETTER[interaction]) if q is not None]


def _enforceable(rtype: str, query: str) -> bool:
    return all(name in TARGET_TOKENS[rtype] for name, _ in parse_qsl(query))


def target_matches(rtype: str, query: str) -> bool:
    """Whether the matrix's target record matches a granular query (search token semantics)."""
    if not _enforceable(rtype, query):
        return False
    for name, value in parse_qsl(query):
        pairs = TARGET_TOKENS[rtype][name]
        if not any(_token(pairs, alternative) for alternative in value.split(",")):
            return False
    return True


def _token(pairs: list[tuple[str | None, str]], wanted: str) -> bool:
    if "|" not in wanted:
        return any(code == wanted for _, code in pairs)
    system, _, code = wanted.partition("|")
    if not system:
        return (None, code) in pairs
    return any(s == system and (not code or c == code) for s, c in pairs)


def permitted(token: Token, rtype: str, interaction: str) -> bool:
    if interaction == "evaluate":  # r on Patient and s on Observation
        return _permits(token, "Patient", "read") and _permits(token, "Observation", "search")
    if interaction == "conditional-create":  # c to create, s to match (r to return a match)
        return _permits(token, rtype, "create") and _permits(token, rtype, "search")
    if interaction == "conditional-update":  # u to update, s to match
        return _permits(token, rtype, "update") and _permits(token, rtype, "search")
    return _permits(token, rtype, interaction)


def _permits(token: Token, rtype: str, interaction: str) -> bool:
    glass = token.glass == "reason" and interaction in READ_SIDE
    return scope_grants(token, rtype, LETTER[interaction]) or glass


def confined(token: Token, interaction: str) -> bool:
    """Whether the interaction is confined to the token's own compartment."""
    return token.own and not (token.glass == "reason" and interaction in READ_SIDE)


def expect(token: Token, interaction: str, rtype: str, target_is_own: bool) -> Expect:
    if token.glass == "empty":
        return Expect(403)  # a break-glass header without a usable reason is refused outright
    if interaction == "chained-search":
        if not _permits(token, INNER[rtype], "search"):
            return Expect(403)
        interaction = "search"  # otherwise exactly a search of rtype
    reachable = target_is_own or not confined(token, interaction)
    if not permitted(token, rtype, interaction):
        queries = granular_queries(token, rtype, interaction)
        return _granular(rtype, interaction, queries, reachable) if queries else Expect(403)
    if interaction in ("read", "vread", "history", "batch-read"):
        return Expect(200 if reachable else 404)
    if interaction in ("search", "lastn", "stats"):
        return Expect(200, sees_target=reachable)
    if interaction == "evaluate":
        return Expect(404)  # no such plugin: refused before any record is read
    if interaction in ("create", "transaction-create"):
        return Expect(201 if reachable else 403)
    if interaction == "conditional-create":
        # Matching is a search and returning the match a read (so break-glass may widen them):
        # a visible match is returned (r needed); an invisible one is no match, so a new record
        # for the target, which a token confined for writes may not create.
        if target_is_own or not confined(token, "search"):
            return Expect(200) if _permits(token, rtype, "read") else Expect(403)
        return Expect(403)
    if interaction == "update":
        return Expect(200 if reachable else 403)  # the body names the other compartment: 403
    if interaction == "conditional-update":
        # A match the search cannot see is no match: a create, which a confined token may not
        # make for another patient; a visible match is updated if the write compartment allows.
        visible = target_is_own or not confined(token, "search")
        return Expect(200 if visible and reachable else 403)
    if interaction == "delete":
        return Expect(204 if reachable else 404)
    raise AssertionError(interaction)


def _granular(rtype: str, interaction: str, queries: list[str], reachable: bool) -> Expect:
    """Only granular scopes allow it: the records their queries match, nothing else; a search
    whose scopes name only parameters that cannot be enforced is refused."""
    seen = reachable and any(target_matches(rtype, q) for q in queries)
    if interaction == "search":
        if not any(_enforceable(rtype, q) for q in queries):
            return Expect(403)
        return Expect(200, sees_target=seen)
    return Expect(200 if seen else 404)
