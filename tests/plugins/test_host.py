"""Hooks over a plugin source: matching, collection of failures, references and audit records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from healthstack.plugins import Plugin, PluginError, PluginHost, PluginRuntime
from healthstack.plugins.host import PLUGIN_TAG_SYSTEM, StaticPluginSource

Wat = Callable[..., Plugin]
Vitals = Callable[..., list[dict[str, Any]]]


def run(host: PluginHost, *args: Any) -> Any:
    return asyncio.run(host.run_hook(*args))


def test_derive_resolves_references_and_tags_plugin(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals
) -> None:
    host = PluginHost(runtime, StaticPluginSource([news2]))
    result = run(host, "derive", "Observation", vitals(hr=135))
    (derived,) = result.resources
    assert derived["valueInteger"] == 3
    assert derived["derivedFrom"][0] == {"reference": "Observation/rr-0"}
    assert len(derived["derivedFrom"]) == 5
    assert {"system": PLUGIN_TAG_SYSTEM, "code": "news2@1.0.0", "display": news2.sha256} in derived[
        "meta"
    ]["tag"]
    (record,) = result.invocations
    assert (record.plugin, record.version, record.sha256, record.outcome) == (
        "news2",
        "1.0.0",
        news2.sha256,
        "success",
    )
    assert record.duration_ms > 0
    assert not result.failures


def test_inputs_without_ids_drop_their_reference(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals
) -> None:
    resources = vitals()
    del resources[0]["id"]
    (derived,) = run(
        PluginHost(runtime, StaticPluginSource([news2])), "derive", "Observation", resources
    ).resources
    assert len(derived["derivedFrom"]) == 4


def test_validate_collects_issues_and_failures(runtime: PluginRuntime, wat: Wat) -> None:
    host = PluginHost(runtime, StaticPluginSource([wat("good"), wat("reject"), wat("trap")]))
    result = run(host, "validate", "Patient", [{"resourceType": "Patient"}])
    assert result.rejected
    assert [i["code"] for i in result.issues] == ["business-rule"]
    assert [f.code for f in result.failures] == ["trap"]
    assert sorted(r.outcome for r in result.invocations) == ["rejected", "success", "trap"]
    assert result.issues[0]["diagnostics"] == "plugin 'reject@1.0.0': heart rate is implausible"
    outcome = result.operation_outcome()
    assert len(outcome["issue"]) == 2


def test_validate_fails_closed_when_a_validator_breaks(runtime: PluginRuntime, wat: Wat) -> None:
    result = run(
        PluginHost(runtime, StaticPluginSource([wat("badjson")])), "validate", "Patient", []
    )
    assert result.rejected
    assert not result.issues


def test_disabled_and_unmatched_plugins_do_not_run(
    runtime: PluginRuntime, wat: Wat, news2: Plugin
) -> None:
    host = PluginHost(runtime, StaticPluginSource([wat("reject", enabled=False), news2]))
    assert run(host, "validate", "Patient", []).invocations == []
    assert run(host, "derive", "Encounter", []).invocations == []


def test_operation_runs_one_named_plugin(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals
) -> None:
    host = PluginHost(
        runtime, StaticPluginSource([news2, replace(news2, name="off", enabled=False)])
    )
    result = asyncio.run(host.run_operation("news2", "Patient", vitals()[:3]))
    assert result.resources[0]["resourceType"] == "OperationOutcome"
    for name, code in [("missing", "not-found"), ("off", "disabled")]:
        with pytest.raises(PluginError) as info:
            asyncio.run(host.run_operation(name, "Patient", []))
        assert info.value.code == code


def test_operation_failure_is_collected(runtime: PluginRuntime, wat: Wat) -> None:
    host = PluginHost(runtime, StaticPluginSource([wat("huge")]))
    result = asyncio.run(host.run_operation("huge", "Patient", []))
    assert [f.code for f in result.failures] == ["output-too-large"]
    assert result.invocations[0].outcome == "output-too-large"
