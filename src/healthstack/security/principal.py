"""Who is calling: the authenticated identity every handler and audit record works from.

Interface shared by the API (``healthstack.fhir``) and access control (``healthstack.security``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    subject: str  # token `sub`: unique user identification, 164.312(a)(2)(i)
    client_id: str | None = None  # token `client_id` / `azp`
    scopes: frozenset[str] = field(default_factory=frozenset)  # raw SMART v2 scope strings
    patient: str | None = None  # patient-context tokens: the one patient compartment visible
    break_glass_reason: str | None = None  # set only when an allowed break-glass request gave one
    token_id: str | None = None  # `jti`, for correlating audit records with a session


ANONYMOUS = Principal(subject="anonymous")
