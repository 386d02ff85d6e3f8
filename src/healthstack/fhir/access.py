"""The FHIR API's one integration point with access control and audit (``healthstack.security``).

Every interaction goes through :meth:`Caller.authorize` (SMART scopes, denials audited) and
:meth:`Caller.audit` (an audit record on the caller's connection: inside the write's transaction,
or committed before a read's response). Compartment confinement is :attr:`Caller.patient`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.types import ASGIApp

from healthstack.fhir.outcome import FhirError
from healthstack.security import audit, authz
from healthstack.security.middleware import AuthMiddleware, principal_of
from healthstack.security.principal import Principal
from healthstack.service.state import ServiceState

DENIAL_AUDITED = "fhir_denial_audited"


def protect(app: ASGIApp, state: ServiceState) -> ASGIApp:
    """Authentication in front of the whole FHIR router (401 before any handler runs)."""
    return AuthMiddleware(app, state)


@dataclass
class Caller:
    state: ServiceState
    principal: Principal
    # The request's scope state: a denial already audited here is not audited again as a failure.
    marks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, request: Request, state: ServiceState) -> Caller:
        return cls(state, principal_of(request), request.scope.setdefault("state", {}))

    @property
    def patient(self) -> str | None:
        """The patient compartment the caller is confined to (None: unrestricted)."""
        return authz.patient_scope(self.principal)

    async def authorize(self, resource_type: str, interaction: str, **fields: Any) -> None:
        try:
            authz.require(self.principal, resource_type, interaction)
        except FhirError as denial:
            self.marks[DENIAL_AUDITED] = True
            await self.record_detached(
                interaction, "denied", resource_type=resource_type, detail=str(denial), **fields
            )
            raise

    def in_compartment(self, resource_type: str, resource: Mapping[str, Any]) -> bool:
        return authz.in_compartment(self.principal, resource_type, resource)

    async def audit(
        self, conn: asyncpg.Connection, interaction: str, resource_type: str, **fields: Any
    ) -> None:
        event = audit.event_for(
            self.principal, interaction, "success", resource_type=resource_type, **fields
        )
        await audit.record(conn, self.state, event)

    async def record_detached(self, interaction: str, outcome: str, **fields: Any) -> None:
        """For denials and failed interactions, whose own transaction (if any) rolled back."""
        event = audit.event_for(self.principal, interaction, outcome, **fields)
        await audit.record_detached(self.state, event)


def redact(resource_type: str | None, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    return audit.redact_query(resource_type, grouped)


async def audit_failure(
    request: Request, state: ServiceState, interaction: str, error: FhirError
) -> FhirError:
    """A failed interaction (404, 409, 412, 422...) is audited too, on its own connection.

    Returns the error to answer with: the audit failure itself if the record cannot be written.
    """
    scope_state = request.scope.get("state", {})
    principal = scope_state.get("principal")
    if error.status in (401, 500) or scope_state.get(DENIAL_AUDITED) or principal is None:
        return error
    rtype = request.path_params.get("rtype", "Bundle" if interaction == "batch" else "Observation")
    fields: dict[str, Any] = {"resource_type": rtype, "detail": f"HTTP {error.status}"}
    if "id" in request.path_params:
        fields["resource_id"] = request.path_params["id"][:64]
    outcome = "denied" if error.status == 403 else "error"
    try:
        await Caller(state, principal).record_detached(interaction, outcome, **fields)
    except audit.AuditWriteError as failure:
        # A 503 stays a 503 (retryable: the database is down, so is the audit table).
        return error if error.status >= 500 else failure
    return error
