"""Hooks: which plugins run for a trigger and resource type, and what the API gets back.

The FHIR API calls :meth:`PluginHost.run_hook` (validate before store, derive after store) and
:meth:`PluginHost.run_operation` (``$evaluate``). A failing plugin never raises out of a hook: its
:class:`PluginError` is collected in the result, next to an invocation record for the audit trail.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from healthstack.plugins.errors import PluginError
from healthstack.plugins.model import Plugin
from healthstack.plugins.runtime import PluginRuntime

PLUGIN_TAG_SYSTEM = "urn:healthstack:plugin"
_INPUT_REF = re.compile(r"^input:(\d+)$")


class PluginSource(Protocol):
    """Where plugins come from: the PostgreSQL registry, or a fixed list."""

    async def plugins_for(self, trigger: str, resource_type: str) -> list[Plugin]: ...

    async def get(self, name: str) -> Plugin | None: ...


@dataclass
class StaticPluginSource:
    """A fixed set of plugins (tests, single-node setups without the registry)."""

    plugins: list[Plugin]

    async def plugins_for(self, trigger: str, resource_type: str) -> list[Plugin]:
        return [p for p in self.plugins if p.runs_for(trigger, resource_type)]

    async def get(self, name: str) -> Plugin | None:
        return next((p for p in self.plugins if p.name == name), None)


@dataclass(frozen=True)
class InvocationRecord:
    """One plugin call, as the audit trail records it (never the resources or the output)."""

    plugin: str
    version: str
    sha256: str
    trigger: str
    resource_type: str
    duration_ms: float
    outcome: (
        str  # "success", "rejected" (a validator returned an error issue) or a PluginError code
    )

    def to_audit(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def audit_detail(self) -> str:
        """The AuditEvent ``detail`` of this call: identity, trigger, cost and outcome, no PHI."""
        return (
            f"plugin={self.plugin} version={self.version} sha256={self.sha256} "
            f"trigger={self.trigger} duration_ms={self.duration_ms:.1f} outcome={self.outcome}"
        )


@dataclass
class HookResult:
    """What all matching plugins returned for one hook."""

    trigger: str
    resource_type: str
    issues: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    failures: list[PluginError] = field(default_factory=list)
    invocations: list[InvocationRecord] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        """Validate fails closed: an error issue, or a validator that could not run, rejects."""
        if self.trigger == "validate" and self.failures:
            return True
        return any(i.get("severity") in ("error", "fatal") for i in self.issues)

    def operation_outcome(self) -> dict[str, Any]:
        issues = self.issues + [f.to_issue() for f in self.failures]
        if not issues:
            issues = [
                {"severity": "information", "code": "informational", "diagnostics": "no issues"}
            ]
        return {"resourceType": "OperationOutcome", "issue": issues}


class PluginHost:
    """Runs hooks for the API. One per process, sharing one :class:`PluginRuntime`."""

    def __init__(self, runtime: PluginRuntime, source: PluginSource) -> None:
        self.runtime, self.source = runtime, source

    async def run_hook(
        self,
        trigger: str,
        resource_type: str,
        resources: list[dict[str, Any]],
        params: dict[str, Any] | None = None,
    ) -> HookResult:
        """Run every enabled plugin registered for (trigger, resource_type), concurrently."""
        plugins = await self.source.plugins_for(trigger, resource_type)
        result = HookResult(trigger, resource_type)
        calls = [self._one(p, trigger, resource_type, resources, params or {}) for p in plugins]
        for plugin, record, outcome in await asyncio.gather(*calls):
            if isinstance(outcome, PluginError):
                result.failures.append(outcome)
            elif trigger == "validate":
                issues = [_labelled(plugin, i) for i in outcome]
                if any(i.get("severity") in ("error", "fatal") for i in issues):
                    record = replace(record, outcome="rejected")
                result.issues.extend(issues)
            else:
                result.resources.extend(_stamp(plugin, r, resources) for r in outcome)
            result.invocations.append(record)
        return result

    async def operation_plugin(self, name: str, resource_type: str) -> Plugin:
        """The enabled operation plugin ``name`` for ``resource_type``, or ``PluginError``."""
        plugin = await self.source.get(name)
        if (
            plugin is None
            or "operation" not in plugin.triggers
            or resource_type not in plugin.resource_types
        ):
            raise PluginError("not-found", f"no operation plugin {name!r} for {resource_type}")
        if not plugin.enabled:
            raise PluginError("disabled", f"plugin {name!r} is disabled")
        return plugin

    async def run_operation(
        self,
        name: str,
        resource_type: str,
        resources: list[dict[str, Any]],
        params: dict[str, Any] | None = None,
    ) -> HookResult:
        """``$evaluate?plugin=NAME``: raises ``not-found``/``disabled`` before running anything."""
        plugin = await self.operation_plugin(name, resource_type)
        result = HookResult("operation", resource_type)
        _, record, outcome = await self._one(
            plugin, "operation", resource_type, resources, params or {}
        )
        result.invocations.append(record)
        if isinstance(outcome, PluginError):
            result.failures.append(outcome)
        else:
            result.resources.extend(_stamp(plugin, r, resources) for r in outcome)
        return result

    async def _one(
        self,
        plugin: Plugin,
        trigger: str,
        resource_type: str,
        resources: list[dict[str, Any]],
        params: dict[str, Any],
    ) -> tuple[Plugin, InvocationRecord, list[dict[str, Any]] | PluginError]:
        started = time.perf_counter()
        outcome: list[dict[str, Any]] | PluginError
        try:
            outcome = (await self.runtime.invoke(plugin, trigger, resources, params)).items
        except PluginError as exc:
            outcome = exc
        duration = (time.perf_counter() - started) * 1000
        code = outcome.code if isinstance(outcome, PluginError) else "success"
        record = InvocationRecord(
            plugin.name, plugin.version, plugin.sha256, trigger, resource_type, duration, code
        )
        return plugin, record, outcome


def _labelled(plugin: Plugin, issue: dict[str, Any]) -> dict[str, Any]:
    """Name the plugin in an issue's diagnostics, so a rejected client knows which rule spoke."""
    text = issue.get("diagnostics")
    prefix = f"plugin {plugin.label!r}"
    return {**issue, "diagnostics": f"{prefix}: {text}" if text else prefix}


def _stamp(
    plugin: Plugin, resource: dict[str, Any], inputs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Resolve ``input:N`` references to the inputs' ids and tag the resource with its plugin."""
    out = copy.deepcopy(resource)
    refs = []
    for ref in out.get("derivedFrom", []):
        resolved = _resolve(ref, inputs)
        if resolved is not None:
            refs.append(resolved)
    if "derivedFrom" in out:
        out["derivedFrom"] = refs
    tags = out.setdefault("meta", {}).setdefault("tag", [])
    tags.append(
        {
            "system": PLUGIN_TAG_SYSTEM,
            "code": f"{plugin.name}@{plugin.version}",
            "display": plugin.sha256,
        }
    )
    return out


def _resolve(ref: Any, inputs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``{"reference": "input:N"}`` -> ``Type/id`` of input N; unresolvable ones are dropped."""
    if not isinstance(ref, dict):
        return None
    match = _INPUT_REF.match(str(ref.get("reference", "")))
    if match is None:
        return ref
    index = int(match.group(1))
    if index >= len(inputs) or not inputs[index].get("id"):
        return None
    source = inputs[index]
    return {"reference": f"{source['resourceType']}/{source['id']}"}
