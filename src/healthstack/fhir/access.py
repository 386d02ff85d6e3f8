"""The FHIR API's one integration point with access control and audit (``healthstack.security``).

Every interaction goes through :meth:`Caller.authorize` (SMART scopes, denials audited) and
:meth:`Caller.audit` (an audit record on the caller's connection: inside the write's transaction,
or committed before a read's response). Compartment confinement is :attr:`Caller.patient`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import asyncpg
from starlette.requests import Request
from starlette.types import ASGIApp

from healthstack.core.outcome import FhirError
from healthstack.fhir import definitions, searchdefs
from healthstack.fhir.extract import compartment_of
from healthstack.security import audit, authz
from healthstack.security.middleware import AuthMiddleware, principal_of
from healthstack.security.principal import Principal
from healthstack.service.state import ServiceState

if TYPE_CHECKING:
    from healthstack.fhir.store import Store, Version


class WriteHooks(Protocol):
    """What the write path asks of the plugin layer (``plugin_hooks.PluginHooks`` provides it):
    a typed seam, so this module needs nothing from the plugin code."""

    def wanted(self, trigger: str, resource_type: str) -> bool: ...

    async def validate(self, caller: Caller, conn: asyncpg.Connection, rtype: str,
                       resource: dict[str, Any]) -> None: ...  # fmt: skip

    async def derive(self, caller: Caller, conn: asyncpg.Connection, store: Store,
                     version: Version) -> None: ...  # fmt: skip


def write_hooks(state: ServiceState) -> WriteHooks | None:
    """The plugin hooks ``plugins_api.start`` installed, if any."""
    return cast("WriteHooks | None", state.extras.get(PLUGIN_HOOKS))


DENIAL_AUDITED = "fhir_denial_audited"
PLUGIN_HOOKS = "plugin_hooks"  # state.extras key, set by healthstack.fhir.plugins_api.start


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
        """The compartment reads and searches are confined to (None: unrestricted)."""
        return authz.patient_scope(self.principal, "read")

    def patient_for(self, resource_type: str) -> str | None:
        """Read confinement for ``resource_type``: none for types that the CompartmentDefinition
        puts in no patient's compartment (Practitioner, Organization...: no patient's data)."""
        if self.principal.patient is None or not searchdefs.in_some_compartment(resource_type):
            return None
        return self.patient

    @property
    def write_patient(self) -> str | None:
        """The compartment writes are confined to: break-glass never widens it."""
        return authz.patient_scope(self.principal, "create")

    def may(self, resource_type: str, interaction: str) -> bool:
        """Whether the scopes (or break-glass) allow ``interaction``; no audit record."""
        return authz.allowed(self.principal, resource_type, interaction)

    async def authorize(
        self, resource_type: str, interaction: str, granular: bool = False, **fields: Any
    ) -> None:
        try:
            authz.require(self.principal, resource_type, interaction, granular=granular)
        except FhirError as denial:
            self.marks[DENIAL_AUDITED] = True
            what = fields.pop("detail", None)  # e.g. "$lastn": which operation was refused
            detail = f"{what}: {denial}" if what else str(denial)
            await self.record_detached(
                interaction, "denied", resource_type=resource_type, detail=detail, **fields
            )
            raise

    async def authorize_narrowed(
        self, resource_type: str, interaction: str, **fields: Any
    ) -> tuple[authz.Restriction, ...] | None:
        """:meth:`authorize` counting granular scopes (reads and searches): the queries a resource
        must match one of (``healthstack.fhir.granular``), or None when the caller sees all."""
        await self.authorize(resource_type, interaction, granular=True, **fields)
        return authz.restrictions(self.principal, resource_type, interaction)

    def in_compartment(self, resource_type: str, resource: Mapping[str, Any]) -> bool:
        """Whether a resource to be written is inside the caller's write compartment (the
        patients the official CompartmentDefinition places it with)."""
        if self.write_patient is None:
            return True  # unconfined: no FHIRPath work on the write path
        patients = compartment_of(resource_type, str(resource.get("id", "")), dict(resource))
        return authz.compartment_permits(self.principal, patients, "create")

    async def audit(
        self,
        conn: asyncpg.Connection,
        interaction: str,
        resource_type: str | None,
        *,
        outcome: str = "success",
        **fields: Any,
    ) -> None:
        event = audit.event_for(
            self.principal, interaction, outcome, resource_type=resource_type, **fields
        )
        await audit.record(conn, self.state, event)

    async def audit_creates(
        self, conn: asyncpg.Connection, created: Sequence[tuple[str, str]]
    ) -> None:
        """One ``create`` record per (type, id), in order, in one round trip (the Bundle fast
        path): the records :meth:`audit` would write for each, chained one after another."""
        events = [
            audit.event_for(
                self.principal, "create", "success", resource_type=rtype, resource_id=rid, version=1
            )
            for rtype, rid in created
        ]
        await audit.record_many(conn, self.state, events)

    async def audit_reads(
        self, conn: asyncpg.Connection, read: Sequence[tuple[str, str]], detail: str
    ) -> None:
        """One ``read`` record per (type, id), in one round trip (included resources)."""
        events = [
            audit.event_for(
                self.principal,
                "read",
                "success",
                resource_type=rtype,
                resource_id=rid,
                detail=detail,
            )
            for rtype, rid in read
        ]
        await audit.record_many(conn, self.state, events)

    def plugins_wanted(self, resource_type: str) -> bool:
        """Whether a validate or derive plugin may run for writes of this type (hot path)."""
        hooks = write_hooks(self.state)
        return hooks is not None and (
            hooks.wanted("validate", resource_type) or hooks.wanted("derive", resource_type)
        )

    # WASM plugin hooks (docs/plugins.md). Without an enabled plugin for the (trigger, type) each
    # costs a dict lookup and a set lookup: the write path is otherwise untouched.
    async def before_store(
        self, conn: asyncpg.Connection, resource_type: str, resource: dict[str, Any], rid: str
    ) -> None:
        """Validate plugins: raise FhirError (422) if one rejects; call right before storing."""
        hooks = write_hooks(self.state)
        if hooks is not None and hooks.wanted("validate", resource_type):
            await hooks.validate(self, conn, resource_type, {**resource, "id": rid})

    async def after_store(self, conn: asyncpg.Connection, store: Store, version: Version) -> None:
        """Derive plugins: store derived Observations in the same transaction as ``version``."""
        hooks = write_hooks(self.state)
        if hooks is not None and hooks.wanted("derive", version.resource_type):
            await hooks.derive(self, conn, store, version)

    async def record_detached(self, interaction: str, outcome: str, **fields: Any) -> None:
        """For denials and failed interactions, whose own transaction (if any) rolled back."""
        event = audit.event_for(self.principal, interaction, outcome, **fields)
        await audit.record_detached(self.state, event)


def compartment_query(version: Version) -> dict[str, Any]:
    """What a read's record says about whose data it was: ``{"patients": [ids]}`` for a resource
    in patients' compartments, so a break-glass read of an Observation is in its patient's
    accounting of disclosures (164.528). A client-chosen id (update-as-create) may be an MRN: it
    is kept only as a keyed digest, like every other client-typed value in the trail."""
    if not version.patients:
        return {}
    return {"patients": [p if audit.known_id("Patient", p) else audit.Withheld(p)
                         for p in version.patients]}  # fmt: skip


def redact(resource_type: str | None, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    return audit.redact_query(resource_type, grouped)


async def audit_failure(
    request: Request,
    state: ServiceState,
    interaction: str,
    error: FhirError,
    resource_type: str | None = None,
) -> FhirError:
    """A failed interaction (404, 409, 412, 422...) is audited too, on its own connection.

    Returns the error to answer with: the audit failure itself if the record cannot be written.
    """
    scope_state = request.scope.get("state", {})
    principal = scope_state.get("principal")
    if isinstance(error, audit.AuditWriteError) or error.status == 401:
        return error  # an audit outage cannot be audited; a 401 was audited by authentication
    if scope_state.get(DENIAL_AUDITED) or principal is None:
        return error
    rtype = resource_type or request.path_params.get(
        "rtype", "Bundle" if interaction == "batch" else "Observation"
    )
    # Cut as the id is: a client-typed path segment longer than the trail's field limit would make
    # the append refused (with group commit it then had to be written again alone).
    fields: dict[str, Any] = {"resource_type": rtype[:64], "detail": f"HTTP {error.status}"}
    if "id" in request.path_params:
        fields["resource_id"] = request.path_params["id"][:64]  # a digest unless server-assigned
    outcome = "denied" if error.status == 403 else "error"
    try:
        if resource_type is None and not definitions.is_r4_resource_type(rtype):
            # Typed where a type goes, and no type: it may be a name or an MRN (as ids may).
            fields["resource_type"] = audit.withhold(state, rtype)
        await Caller(state, principal).record_detached(interaction, outcome, **fields)
    except audit.AuditWriteError as failure:
        # A 503 stays a 503 (retryable: the database is down, so is the audit table).
        return error if error.status >= 500 else failure
    return error
