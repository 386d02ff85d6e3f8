"""The sandbox: every misbehaving guest fails only its own call, with the right error code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from healthstack.plugins import Limits, Plugin, PluginError, PluginRuntime

OBS = [{"resourceType": "Observation", "status": "final"}]
Wat = Callable[..., Plugin]


def test_good_guest_returns_validated_resources(runtime: PluginRuntime, wat: Wat) -> None:
    result = runtime.call(wat("good"), "derive", OBS)
    assert result.items == [{"resourceType": "Observation", "status": "final"}]
    assert result.fuel_used > 0
    assert runtime.call(wat("good"), "validate", OBS).items == []


@pytest.mark.parametrize(
    ("guest", "limits", "code"),
    [
        ("loop", Limits(fuel=10**15, timeout_ms=100), "timeout"),
        ("loop", Limits(fuel=1_000_000, timeout_ms=10_000), "out-of-fuel"),
        ("membomb", Limits(memory_bytes=8 * 1024 * 1024), "memory-limit"),
        ("bigmemory", None, "memory-limit"),
        ("bigtable", None, "memory-limit"),
        ("huge", None, "output-too-large"),
        ("badjson", None, "invalid-output"),
        ("noinvoke", None, "missing-export"),
        ("wasi_fd_write", None, "import-denied"),
        ("clock", None, "import-denied"),
        ("trap", None, "trap"),
        ("abi2", None, "abi-version"),
    ],
)
def test_bad_guest_fails_its_call_only(
    runtime: PluginRuntime, wat: Wat, guest: str, limits: Limits | None, code: str
) -> None:
    with pytest.raises(PluginError) as info:
        runtime.call(wat(guest), "derive", OBS, limits=limits)
    assert info.value.code == code, info.value.message
    assert info.value.plugin == f"{guest}@1.0.0"
    assert info.value.to_operation_outcome()["issue"][0]["severity"] == "error"
    # The runtime is unharmed: the next, good call succeeds.
    assert runtime.call(wat("good"), "derive", OBS).items[0]["resourceType"] == "Observation"


def test_timeout_respects_deadline(runtime: PluginRuntime, wat: Wat) -> None:
    started = time.perf_counter()
    with pytest.raises(PluginError, match="timeout"):
        runtime.call(wat("loop"), "derive", OBS, limits=Limits(fuel=10**15, timeout_ms=200))
    elapsed = time.perf_counter() - started
    # The deadline holds (lower bound); the upper bound leaves room for a busy CI host.
    assert 0.19 <= elapsed < 1.5, elapsed


def test_granted_clock_capability_links(runtime: PluginRuntime, wat: Wat) -> None:
    assert runtime.call(wat("clock", grants=frozenset({"clock"})), "validate", OBS).items == []


def test_granting_unrelated_capability_does_not_help(runtime: PluginRuntime, wat: Wat) -> None:
    with pytest.raises(PluginError, match="clock"):
        runtime.call(wat("clock", grants=frozenset({"random"})), "validate", OBS)


def test_wasi_function_outside_capabilities_is_denied_even_with_all_grants(
    runtime: PluginRuntime, wat: Wat
) -> None:
    plugin = wat("wasi_fd_write", grants=frozenset({"clock", "random"}))
    with pytest.raises(PluginError, match=r"fd_write, which the plugin host does not provide"):
        runtime.call(plugin, "validate", OBS)


def test_output_shape_is_checked_per_trigger(runtime: PluginRuntime, wat: Wat) -> None:
    # The echo guest returns its input, {"trigger", "resources", "params"}: fine for derive when
    # the resources are resources, wrong for validate (no "issues") and for non-resources.
    assert runtime.call(wat("echo"), "derive", OBS).items == OBS
    with pytest.raises(PluginError, match="'issues' array") as info:
        runtime.call(wat("echo"), "validate", OBS)
    assert info.value.code == "invalid-output"
    with pytest.raises(PluginError, match=r"resources\[1\] must be an object with a string"):
        runtime.call(wat("echo"), "derive", [*OBS, {"resources": []}])
    with pytest.raises(PluginError, match="not a FHIR resource type"):
        runtime.call(wat("echo"), "derive", [{"resourceType": "../etc"}])


def test_input_size_is_capped(runtime: PluginRuntime, wat: Wat) -> None:
    big = [{"resourceType": "Observation", "note": "x" * 2000}]
    with pytest.raises(PluginError) as info:
        runtime.call(wat("good"), "derive", big, limits=Limits(max_input_bytes=1000))
    assert info.value.code == "input-too-large"


def test_non_wasm_bytes_fail_to_compile(runtime: PluginRuntime) -> None:
    for blob in (b"(module)", b"\0asm\x01\0\0\0garbage"):
        with pytest.raises(PluginError) as info:
            runtime.call(Plugin("junk", "1", blob), "derive", OBS)
        assert info.value.code == "compile-error"


def test_modules_are_compiled_once_per_hash(wat: Wat) -> None:
    with PluginRuntime() as rt:
        for _ in range(5):
            rt.call(wat("good"), "derive", OBS)
        rt.call(wat("echo"), "derive", OBS)
        assert rt.modules.compiles == 2


def test_runaway_does_not_block_quick_calls(wat: Wat) -> None:
    async def scenario(rt: PluginRuntime) -> tuple[float, list[float]]:
        started = time.perf_counter()
        runaway = asyncio.ensure_future(
            rt.invoke(wat("loop"), "derive", OBS, limits=Limits(fuel=10**15, timeout_ms=500))
        )
        quick_done = []
        for _ in range(100):
            await rt.invoke(wat("good"), "derive", OBS)
            quick_done.append(time.perf_counter() - started)
        with pytest.raises(PluginError, match="timeout"):
            await runaway
        return time.perf_counter() - started, quick_done

    with PluginRuntime(workers=2) as rt:
        runaway_elapsed, quick_done = asyncio.run(scenario(rt))
    assert len(quick_done) == 100
    assert max(quick_done) < 0.5, "quick calls waited for the runaway"
    assert 0.49 <= runaway_elapsed < 2.0
