"""Authorization decisions (164.312(a)(1)): SMART scopes, patient compartments and break-glass.

The API calls :func:`require` before each interaction and :func:`patient_scope` to confine reads,
searches, histories and Bundle entries to a patient compartment. Denials of an interaction the
scopes do not grant are 403 (they reveal nothing about records); a record outside the caller's
compartment must be answered exactly like a missing one, 404 (see :func:`hidden`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping

from healthstack.core.outcome import FhirError
from healthstack.security.principal import Principal
from healthstack.security.scopes import BREAK_GLASS_SCOPES, Grant, parse_scopes

# A wildcard scope (`system/*.rs`) reaches every FHIR type but these: reading the audit trail needs
# a scope that names AuditEvent (separation of duties: clinicians do not audit), and plugin
# administration one that names the pseudo-type Plugin. Break-glass never reaches them either.
AUDIT_TYPE = "AuditEvent"
SEPARATE_TYPES = frozenset({AUDIT_TYPE, "Plugin"})
# Interaction -> the SMART v2 permission letter it needs.
INTERACTIONS: Mapping[str, str] = {
    "read": "r", "vread": "r", "history": "r",
    "search": "s", "history-type": "s", "operation": "s",
    "create": "c", "update": "u", "delete": "d",
}  # fmt: skip
# What a granular scope (`patient/Observation.rs?category=...`) can reach: a read or vread of a
# resource its query matches, a search narrowed by its query. Everything else (history,
# operations, _include targets, $everything, writes) needs a scope without a query.
GRANULAR_INTERACTIONS = frozenset({"read", "vread", "search"})
Restriction = tuple[tuple[str, str], ...]
# What break-glass widens: read-side access to FHIR types, outside any patient compartment.
BREAK_GLASS_INTERACTIONS = frozenset({"read", "vread", "history", "search", "history-type",
                                      "operation"})  # fmt: skip


# A break-glass reason is what a reviewer acts on later (164.312(a)(2)(ii), 164.308(a)(1)(ii)(D)):
# "." or "x" tells them nothing. These rules keep out the empty, the one-word and the keyboard
# mash without pretending to judge clinical prose (docs/security.md, "Emergency access").
REASON_MIN_CHARS = 10
REASON_MAX_CHARS = 500
REASON_MIN_WORDS = 2
_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters, any script


def reason_problem(reason: str) -> str | None:
    """Why a (cleaned) break-glass reason cannot be accepted, or None when it can."""
    if len(reason) < REASON_MIN_CHARS:
        return f"needs at least {REASON_MIN_CHARS} characters"
    if len(reason) > REASON_MAX_CHARS:
        return f"allows at most {REASON_MAX_CHARS} characters"
    words = _WORD.findall(reason)
    if len({w.lower() for w in words}) < REASON_MIN_WORDS:
        return f"needs at least {REASON_MIN_WORDS} different words"
    return None


def clean_reason(raw: str) -> str:
    """Printable characters only, runs of white space folded to one space."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in raw).split())


@functools.lru_cache(maxsize=4096)
def grants_of(scopes: frozenset[str]) -> tuple[Grant, ...]:
    return parse_scopes(scopes)


def has_break_glass_permission(principal: Principal) -> bool:
    return not BREAK_GLASS_SCOPES.isdisjoint(principal.scopes)


def breaking_glass(principal: Principal) -> bool:
    """True when this request is an allowed break-glass request (permission and a reason)."""
    return principal.break_glass_reason is not None


def _effective(principal: Principal) -> tuple[Grant, ...]:
    grants = grants_of(principal.scopes)
    if principal.patient is None:
        # patient/ scopes without a patient context would have no compartment to confine them.
        return tuple(g for g in grants if g.context != "patient")
    return grants


def _covering(principal: Principal, resource_type: str, interaction: str) -> list[Grant]:
    letter = INTERACTIONS.get(interaction)
    if letter is None:
        return []
    if resource_type == AUDIT_TYPE and letter not in "rs":
        return []  # the audit trail is append-only through the service, never through the API
    return [
        grant
        for grant in _effective(principal)
        if not (grant.context == "patient" and resource_type in SEPARATE_TYPES)
        and grant.covers(resource_type, letter, SEPARATE_TYPES)
    ]


def allowed(
    principal: Principal, resource_type: str, interaction: str, *, granular: bool = False
) -> bool:
    """Whether the scopes (or break-glass) allow the interaction. Granular scopes count only when
    the caller asks ``granular=True`` and then applies :func:`restrictions` itself."""
    for grant in _covering(principal, resource_type, interaction):
        if not grant.query or (granular and interaction in GRANULAR_INTERACTIONS):
            return True
    return (
        breaking_glass(principal)
        and resource_type not in SEPARATE_TYPES
        and interaction in BREAK_GLASS_INTERACTIONS
    )


def restrictions(
    principal: Principal, resource_type: str, interaction: str
) -> tuple[Restriction, ...] | None:
    """None when a scope without a query (or break-glass) allows the interaction; otherwise the
    queries of the granular scopes that do, any one of which a resource must match."""
    if allowed(principal, resource_type, interaction):
        return None
    return tuple(g.query for g in _covering(principal, resource_type, interaction) if g.query)


def require(
    principal: Principal, resource_type: str, interaction: str, *, granular: bool = False
) -> None:
    """403 unless the principal's scopes (or break-glass) allow the interaction on the type."""
    if allowed(principal, resource_type, interaction, granular=granular):
        return
    raise FhirError(
        403,
        "forbidden",
        f"the access token's scopes do not permit {interaction} on {resource_type}",
    )


WRITE_INTERACTIONS = frozenset({"create", "update", "delete"})


def patient_scope(principal: Principal, interaction: str = "read") -> str | None:
    """The patient id the caller is confined to for ``interaction``, or None when unrestricted.

    A token with a `patient` claim is confined to that compartment whatever else it holds. An
    allowed break-glass request lifts the confinement for read-side interactions only (and is
    flagged in the audit trail): emergency access is for looking, never for writing, so creates,
    updates and deletes stay inside the token's own compartment.
    """
    if principal.patient is None:
        return None
    if breaking_glass(principal) and interaction in BREAK_GLASS_INTERACTIONS:
        return None
    return principal.patient


def compartment_permits(principal: Principal, patients: Collection[str], interaction: str) -> bool:
    """Whether a resource in ``patients``' compartments is within the caller's reach for
    ``interaction`` (always, when the caller is not confined). Which patients a resource belongs
    to is the FHIR layer's knowledge (the CompartmentDefinition), not this module's."""
    patient = patient_scope(principal, interaction)
    return patient is None or patient in patients


def hidden(resource_type: str, resource_id: str) -> FhirError:
    """The 404 for a record outside the compartment: the same words as for a missing record."""
    return FhirError(404, "not-found", f"{resource_type}/{resource_id} not found")
