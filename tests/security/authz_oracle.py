"""What docs/security.md promises, written as an oracle independent of the code under test.

Given a token (scopes, patient context, break-glass state), an interaction, a resource type and
whose record it touches, :func:`expect` says what the API must answer. It parses scopes itself
(no import from ``healthstack.security``): a bug in the service's scope parser cannot hide here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEPARATE = ("AuditEvent", "Plugin")  # a wildcard never reaches these
# The interaction letter each interaction needs (docs/security.md, "Authorization").
LETTER = {
    "read": "r", "vread": "r", "history": "r", "batch-read": "r",
    "search": "s", "lastn": "s", "stats": "s",
    "create": "c", "transaction-create": "c", "conditional-create": "c",
    "update": "u", "conditional-update": "u", "delete": "d", "evaluate": "r",
}  # fmt: skip
# Break-glass widens reads only: "It never grants create, update or delete".
READ_SIDE = frozenset(
    {"read", "vread", "history", "batch-read", "search", "lastn", "stats", "evaluate"}
)
V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)$")


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


def scope_grants(token: Token, rtype: str, letter: str) -> bool:
    """Whether the scopes alone grant ``letter`` on ``rtype``."""
    for scope in token.scopes:
        match = _SCOPE.match(scope)
        if match is None:
            continue
        context, kind, perms = match.groups()
        if context == "patient" and (not token.own or rtype in SEPARATE):
            continue  # patient/ scopes without a patient claim grant nothing
        if kind not in (rtype, "*") or (kind == "*" and rtype in SEPARATE):
            continue
        if letter in _letters(perms):
            return True
    return False


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
    if not permitted(token, rtype, interaction):
        return Expect(403)
    reachable = target_is_own or not confined(token, interaction)
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
