"""Plugin test fixtures: one shared runtime, WAT guests, the NEWS2 guest compiled from C."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from healthstack.plugins import Plugin, PluginRuntime
from healthstack.plugins.toolchain import compile_c, find_clang

REPO = Path(__file__).resolve().parents[2]
GUESTS = Path(__file__).resolve().parent / "guests"
NEWS2_SOURCE = REPO / "plugins" / "news2" / "news2.c"


@pytest.fixture(scope="module")
def runtime() -> Iterator[PluginRuntime]:
    with PluginRuntime() as rt:
        yield rt


@pytest.fixture(scope="session")
def wat() -> Callable[..., Plugin]:
    """``wat("loop")`` -> a Plugin built from tests/plugins/guests/loop.wat."""

    def load(name: str, grants: frozenset[str] = frozenset(), enabled: bool = True) -> Plugin:
        return Plugin(
            name,
            "1.0.0",
            wasmtime.wat2wasm((GUESTS / f"{name}.wat").read_text()),
            triggers=frozenset({"validate", "derive", "operation"}),
            resource_types=frozenset({"Observation", "Patient"}),
            grants=grants,
            enabled=enabled,
        )

    return load


def _ensure_clang() -> None:
    if find_clang() is None:
        # `make test` runs sysdeps first; a bare pytest run tries once, then skips with a reason.
        subprocess.run(["make", "-C", str(REPO), "sysdeps"], capture_output=True, check=False)
    if find_clang() is None:
        pytest.skip("clang-14 is not installed and `make sysdeps` could not install it")


@pytest.fixture(scope="session")
def news2_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    _ensure_clang()
    return compile_c(NEWS2_SOURCE, tmp_path_factory.mktemp("news2") / "news2.wasm")


@pytest.fixture(scope="session")
def news2(news2_wasm: bytes) -> Plugin:
    return Plugin(
        "news2",
        "1.0.0",
        news2_wasm,
        triggers=frozenset({"derive", "operation"}),
        resource_types=frozenset({"Observation", "Patient"}),
    )


LOINC = {"rr": "9279-1", "spo2": "59408-5", "sbp": "8480-6", "hr": "8867-4", "temp": "8310-5"}
NORMAL = {"rr": 16, "spo2": 97, "sbp": 120, "hr": 70, "temp": 37.0}


def make_obs(kind: str, value: float, *, index: int = 0, **extra: Any) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if kind == "temp":
        quantity["code"] = "Cel"
    return {
        "resourceType": "Observation",
        "id": f"{kind}-{index}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": LOINC[kind]}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": f"2026-03-01T10:0{index}:00Z",
        "valueQuantity": quantity,
        **extra,
    }


def make_vitals(**values: float) -> list[dict[str, Any]]:
    merged = {**NORMAL, **values}
    return [make_obs(kind, merged[kind], index=i) for i, kind in enumerate(LOINC)]


@pytest.fixture(scope="session")
def obs() -> Callable[..., dict[str, Any]]:
    """``obs("hr", 72, index=3)``: one vital-sign Observation (LOINC-coded, Patient/p1)."""
    return make_obs


@pytest.fixture(scope="session")
def vitals() -> Callable[..., list[dict[str, Any]]]:
    """``vitals(hr=135)``: the five NEWS2 vitals, normal unless overridden, inputs 0..4."""
    return make_vitals
