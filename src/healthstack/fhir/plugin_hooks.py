"""WASM plugin hooks in the FHIR API: validate before a write, derive after it, ``$evaluate``.

:class:`PluginHooks` lives in ``state.extras["plugin_hooks"]``; :class:`~healthstack.fhir.access.
Caller` calls it from the write path only when an enabled plugin runs for the (trigger, type), so
without plugins a write pays one set lookup. Each plugin call is audited (``interaction=operation``,
``detail`` = plugin, version, sha256, trigger, duration, outcome; never PHI) on the write's own
connection, i.e. in its transaction; a validation that rejects the write is audited on a connection
of its own, since the write's transaction rolls back. Plugins see only resources of the patient the
caller just wrote (or, for ``$evaluate``, read), so they are within the caller's compartment.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import asyncpg
import orjson

from healthstack.core.outcome import FhirError
from healthstack.fhir.access import PLUGIN_HOOKS, Caller
from healthstack.fhir.extract import reference_target
from healthstack.fhir.store import Store, Version
from healthstack.fhir.validate import validate
from healthstack.plugins.cache import CachedPluginSource
from healthstack.plugins.errors import PluginError
from healthstack.plugins.host import PLUGIN_TAG_SYSTEM, HookResult, InvocationRecord, PluginHost
from healthstack.plugins.runtime import PluginRuntime
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.plugins")
HOOKS_KEY = PLUGIN_HOOKS
LOINC = "http://loinc.org"
# LOINC vital signs (the FHIR vital-signs profile): what "the patient's latest vitals" means.
VITAL_CODES = (
    "85353-1", "9279-1", "8867-4", "2708-6", "59408-5", "8310-5", "8302-2", "9843-4",
    "29463-7", "39156-5", "85354-9", "8480-6", "8462-4", "8478-0",
)  # fmt: skip
VITAL_TOKENS = [f"{LOINC}|{code}" for code in VITAL_CODES]
VITAL_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
# The newest Observation per code for one patient (index: patient_id, code, effective_start DESC).
LATEST_VITALS_SQL = """
SELECT DISTINCT ON (code) id, version, deleted, last_updated, key_id, body, effective_start
FROM fhir_resource
WHERE resource_type = 'Observation' AND NOT deleted AND patient_id = $1 AND codes && $2::text[]
ORDER BY code, effective_start DESC NULLS LAST, id DESC
"""
_OLDEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_AUDIT_OUTCOME = {"success": "success", "rejected": "failed"}  # anything else: "error"


class PluginHooks:
    def __init__(self, state: ServiceState, source: CachedPluginSource) -> None:
        self.state, self.source = state, source
        self._host: PluginHost | None = None

    @property
    def host(self) -> PluginHost:
        # Created on first use: without plugins the service runs no epoch thread or wasm pool.
        if self._host is None:
            self._host = PluginHost(PluginRuntime(), self.source)
        return self._host

    @property
    def runtime(self) -> PluginRuntime:
        return self.host.runtime

    def close(self) -> None:
        if self._host is not None:
            self._host.runtime.close()

    def wanted(self, trigger: str, resource_type: str) -> bool:
        """The hot-path check (a source not loaded yet says yes, so the hook loads it)."""
        return not self.source.loaded or self.source.active(trigger, resource_type)

    # -- validate -----------------------------------------------------------------------------------
    async def validate(
        self, caller: Caller, conn: asyncpg.Connection, rtype: str, resource: dict[str, Any]
    ) -> None:
        """Before a write: 422 with the plugins' issues when one rejects (fails closed)."""
        await self.source.ensure_loaded()
        if not self.source.active("validate", rtype):
            return
        result = await self.host.run_hook("validate", rtype, [resource])
        rid = resource.get("id")
        if not result.rejected:
            await self.audit(caller, conn, result, rid)
            return
        await self.audit(caller, None, result, rid)
        issues = result.operation_outcome()["issue"]
        if any(i.get("severity") in ("error", "fatal") for i in result.issues):
            raise FhirError(422, "processing", "rejected by a validation plugin", issues=issues)
        # Only validators that could not run: the server's fault, still nothing is stored.
        status = max(f.http_status for f in result.failures)
        raise FhirError(status, "exception", "a validation plugin failed", issues=issues)

    # -- derive -------------------------------------------------------------------------------------
    async def derive(
        self, caller: Caller, conn: asyncpg.Connection, store: Store, version: Version
    ) -> None:
        """After a vitals Observation is stored, in its transaction: store what plugins derive."""
        if version.resource_type != "Observation" or version.body is None:
            return
        await self.source.ensure_loaded()
        if not self.source.active("derive", "Observation"):
            return
        patient = vital_patient(orjson.loads(version.body))
        if patient is None or caller.write_patient not in (None, patient):
            return
        inputs = await latest_vitals(conn, store, patient)
        result = await self.host.run_hook("derive", "Observation", inputs)
        await self.audit(caller, conn, result, version.id)
        for derived in result.resources:
            await self._store_derived(caller, conn, store, derived, patient)

    async def _store_derived(
        self,
        caller: Caller,
        conn: asyncpg.Connection,
        store: Store,
        derived: dict[str, Any],
        patient: str,
    ) -> None:
        label, sha256 = plugin_tag(derived)
        problem = derived_problem(derived, patient)
        if problem is not None:
            log.warning("derived resource dropped", extra={"plugin": label, "reason": problem})
            return
        if not caller.may("Observation", "create"):
            # Stored on the caller's behalf, so only with the caller's own create permission;
            # the caller's write itself stands (the plugin's result is not theirs to refuse).
            log.warning("derived resource dropped", extra={"plugin": label, "reason": "scope"})
            await caller.audit(
                conn, "create", "Observation", outcome="denied",
                detail=f"derived by plugin={label}: the caller may not create Observation",
            )  # fmt: skip
            return
        derived.pop("id", None)  # the server assigns ids
        stored = await store.create(conn, "Observation", derived)
        await caller.audit(
            conn, "create", "Observation", resource_id=stored.id, version=1,
            detail=f"derived by plugin={label} sha256={sha256}",
        )  # fmt: skip

    # -- $evaluate ----------------------------------------------------------------------------------
    async def evaluate(
        self,
        caller: Caller,
        conn: asyncpg.Connection,
        store: Store,
        patient_id: str,
        name: str,
        params: dict[str, Any],
    ) -> tuple[int, dict[str, Any]]:
        """Read the patient and their latest vitals as the caller, run one plugin on them."""
        await caller.authorize("Patient", "read", resource_id=patient_id)
        await caller.authorize("Observation", "search")
        await self.source.ensure_loaded()
        try:  # an unknown or disabled plugin is refused before any PHI is read
            await self.host.operation_plugin(name, "Patient")
        except PluginError as exc:
            issues = [exc.to_issue()]
            raise FhirError(exc.http_status, "not-found", exc.message, issues=issues) from None
        patient = await store.read(conn, "Patient", patient_id, caller.patient)  # 404 if hidden
        if patient.deleted or patient.body is None:
            raise FhirError(410, "deleted", f"Patient/{patient_id} was deleted")
        vitals = await latest_vitals(conn, store, patient_id)
        await caller.audit(
            conn, "operation", "Patient", resource_id=patient_id,
            detail=f"$evaluate plugin={name[:64]}: Patient and {len(vitals)} latest vitals",
        )  # fmt: skip
        inputs = [orjson.loads(patient.body), *vitals]
        try:
            result = await self.host.run_operation(name, "Patient", inputs, params)
        except PluginError as exc:  # not-found / disabled: nothing ran
            issues = [exc.to_issue()]
            raise FhirError(exc.http_status, "not-found", exc.message, issues=issues) from None
        await self.audit(caller, conn, result, patient_id)
        return evaluation_response(result)

    # -- audit --------------------------------------------------------------------------------------
    async def audit(
        self,
        caller: Caller,
        conn: asyncpg.Connection | None,
        result: HookResult,
        resource_id: str | None,
    ) -> None:
        """One record per plugin call: on ``conn`` (the write's transaction) or detached."""
        for record in result.invocations:
            self.state.metrics.plugin_calls.labels(record.plugin, record.outcome).inc()
            fields = _audit_fields(record, resource_id)
            outcome = _AUDIT_OUTCOME.get(record.outcome, "error")
            if record.outcome not in _AUDIT_OUTCOME:
                log.warning("plugin call failed", extra={"plugin": record.plugin,
                                                         "outcome": record.outcome})  # fmt: skip
            if conn is None:
                await caller.record_detached("operation", outcome, **fields)
            else:
                await caller.audit(conn, "operation", outcome=outcome, **fields)


def _audit_fields(record: InvocationRecord, resource_id: str | None) -> dict[str, Any]:
    return {
        "resource_type": record.resource_type,
        "resource_id": resource_id,
        "detail": record.audit_detail(),
    }


def vital_patient(resource: dict[str, Any]) -> str | None:
    """The patient of a vital-sign Observation (LOINC vital code or vital-signs category)."""
    tokens = {
        f"{coding.get('system', '')}|{coding.get('code', '')}"
        for concept in [resource.get("code", {}), *resource.get("category", [])]
        for coding in concept.get("coding", [])
    }
    if tokens.isdisjoint(VITAL_TOKENS) and VITAL_CATEGORY not in tokens:
        return None
    return reference_patient(resource.get("subject", {}).get("reference"))


async def latest_vitals(conn: asyncpg.Connection, store: Store, patient: str) -> list[Any]:
    """The newest Observation of each vital code for the patient, oldest first (newest wins)."""
    rows = await conn.fetch(LATEST_VITALS_SQL, patient, VITAL_TOKENS)
    rows.sort(key=lambda row: row["effective_start"] or _OLDEST)
    opened = (store.open("Observation", row["id"], row) for row in rows)
    return [orjson.loads(v.body) for v in opened if v.body is not None]


def plugin_tag(resource: dict[str, Any]) -> tuple[str, str]:
    """``(name@version, sha256)`` from the tag the host put on a plugin's resource."""
    for tag in resource.get("meta", {}).get("tag", []):
        if isinstance(tag, dict) and tag.get("system") == PLUGIN_TAG_SYSTEM:
            return str(tag.get("code")), str(tag.get("display"))
    return "unknown", ""


def derived_problem(resource: dict[str, Any], patient: str) -> str | None:
    """Why a derived resource must not be stored, or None. A plugin cannot write elsewhere."""
    if resource.get("resourceType") != "Observation":
        return "only Observations can be derived"
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if reference_patient(reference) != patient:
        return "subject is not the patient of the source observation"
    try:
        validate(resource, "Observation")
    except FhirError as error:
        return f"invalid Observation: {error.issues[0].get('expression', ['?'])}"
    return None


def evaluation_response(result: HookResult) -> tuple[int, dict[str, Any]]:
    """``$evaluate``'s answer: Parameters (200), the plugin's issues (422) or its failure."""
    if result.failures:
        return max(f.http_status for f in result.failures), result.operation_outcome()
    label = result.invocations[0].plugin if result.invocations else "?"
    for resource in result.resources:
        if resource.get("resourceType") == "OperationOutcome" and any(
            i.get("severity") in ("error", "fatal") for i in resource.get("issue", [])
        ):
            return 422, _labelled_outcome(resource, label)
    body: dict[str, Any] = {"resourceType": "Parameters"}
    if result.resources:  # FHIR JSON forbids empty arrays
        body["parameter"] = [{"name": "return", "resource": r} for r in result.resources]
    return 200, body


def _labelled_outcome(outcome: dict[str, Any], plugin: str) -> dict[str, Any]:
    issues = []
    for issue in outcome.get("issue", []):
        text = issue.get("diagnostics")
        label = f"plugin {plugin!r}"
        issues.append({**issue, "diagnostics": f"{label}: {text}" if text else label})
    return {"resourceType": "OperationOutcome", "issue": issues}


def reference_patient(reference: Any) -> str | None:
    """The patient a reference names (``extract.reference_target``), else None."""
    target = reference_target({"reference": reference})
    return target[1] if target is not None and target[0] == "Patient" else None
