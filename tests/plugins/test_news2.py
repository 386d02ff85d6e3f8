"""The NEWS2 reference plugin (compiled from plugins/news2/news2.c) against hand-computed scores.

Bands (RCP 2017, SpO2 scale 1): RR <=8:3 9-11:1 12-20:0 21-24:2 >=25:3; SpO2 <=91:3 92-93:2 94-95:1
>=96:0; oxygen 2; SBP <=90:3 91-100:2 101-110:1 111-219:0 >=220:3; HR <=40:3 41-50:1 51-90:0
91-110:1 111-130:2 >=131:3; consciousness A:0 CVPU:3; temp <=35.0:3 35.1-36.0:1 36.1-38.0:0
38.1-39.0:1 >=39.1:2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from healthstack.plugins import Plugin, PluginRuntime

Vitals = Callable[..., list[dict[str, Any]]]
Obs = Callable[..., dict[str, Any]]

PART = {
    "rr": "respiration-rate",
    "spo2": "spo2-scale-1",
    "sbp": "systolic-blood-pressure",
    "hr": "pulse",
    "temp": "temperature",
}


def score(
    runtime: PluginRuntime, news2: Plugin, resources: list[dict[str, Any]], **params: Any
) -> dict[str, Any]:
    items = runtime.call(news2, "derive", resources, params).items
    assert len(items) == 1
    return items[0]


def parts(result: dict[str, Any]) -> dict[str, int]:
    return {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in result["component"]}


BANDS = [
    *[
        ("rr", v, p)
        for v, p in [
            (5, 3),
            (8, 3),
            (9, 1),
            (11, 1),
            (12, 0),
            (20, 0),
            (21, 2),
            (24, 2),
            (25, 3),
            (40, 3),
        ]
    ],
    *[
        ("spo2", v, p)
        for v, p in [(85, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
    ],
    *[
        ("sbp", v, p)
        for v, p in [
            (70, 3),
            (90, 3),
            (91, 2),
            (100, 2),
            (101, 1),
            (110, 1),
            (111, 0),
            (219, 0),
            (220, 3),
        ]
    ],
    *[
        ("hr", v, p)
        for v, p in [
            (30, 3),
            (40, 3),
            (41, 1),
            (50, 1),
            (51, 0),
            (90, 0),
            (91, 1),
            (110, 1),
            (111, 2),
            (130, 2),
            (131, 3),
        ]
    ],
    *[
        ("temp", v, p)
        for v, p in [
            (34.0, 3),
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
            (40.2, 2),
        ]
    ],
]


@pytest.mark.parametrize(("kind", "value", "points"), BANDS)
def test_each_band(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals, kind: str, value: float, points: int
) -> None:
    result = score(runtime, news2, vitals(**{kind: value}))
    assert parts(result)[PART[kind]] == points
    assert result["valueInteger"] == points


def test_all_normal_scores_zero(runtime: PluginRuntime, news2: Plugin, vitals: Vitals) -> None:
    result = score(runtime, news2, vitals())
    assert result["valueInteger"] == 0
    assert set(parts(result).values()) == {0}
    assert result["interpretation"][0]["text"].startswith("low clinical risk")


@pytest.mark.parametrize(("level", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_consciousness(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals, level: str, points: int
) -> None:
    assert parts(score(runtime, news2, vitals(), consciousness=level))["consciousness"] == points


@pytest.mark.parametrize(("on_oxygen", "points"), [(False, 0), (True, 2)])
def test_air_or_oxygen(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals, on_oxygen: bool, points: int
) -> None:
    assert score(runtime, news2, vitals(), supplementalOxygen=on_oxygen)["valueInteger"] == points


@pytest.mark.parametrize(
    ("values", "params", "total", "risk"),
    [
        # 2 + 1 + 2 (O2) + 1 + 2 + 3 (C) + 1 = 12
        (
            {"rr": 22, "spo2": 95, "sbp": 105, "hr": 115, "temp": 38.5},
            {"supplementalOxygen": True, "consciousness": "C"},
            12,
            "high",
        ),
        # 2 + 1 + 1 + 1 = 5
        ({"rr": 21, "spo2": 94, "sbp": 105, "hr": 95}, {}, 5, "medium"),
        # 3 in one parameter, total 3
        ({"hr": 135}, {}, 3, "low-medium"),
        # 2 + 3 + 2 = 7
        ({"rr": 24, "spo2": 90, "temp": 39.5}, {}, 7, "high"),
        ({"rr": 10}, {}, 1, "low"),
    ],
)
def test_hand_computed_totals(
    runtime: PluginRuntime,
    news2: Plugin,
    vitals: Vitals,
    values: dict[str, float],
    params: dict[str, Any],
    total: int,
    risk: str,
) -> None:
    result = score(runtime, news2, vitals(**values), **params)
    assert result["valueInteger"] == total
    assert result["interpretation"][0]["text"].startswith(f"{risk} clinical risk")


def test_output_observation_shape(runtime: PluginRuntime, news2: Plugin, vitals: Vitals) -> None:
    result = score(runtime, news2, vitals())
    assert result["resourceType"] == "Observation"
    assert result["code"]["coding"] == [
        {
            "system": "http://snomed.info/sct",
            "code": "1104051000000101",
            "display": "Royal College of Physicians NEWS2 total score",
        }
    ]
    assert result["subject"] == {"reference": "Patient/p1"}
    assert result["effectiveDateTime"] == "2026-03-01T10:04:00Z"  # the latest input
    assert result["derivedFrom"] == [{"reference": f"input:{i}"} for i in range(5)]


def test_blood_pressure_panel_component(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals, obs: Obs
) -> None:
    panel = obs("sbp", 0, index=2)
    del panel["valueQuantity"]
    panel["code"] = {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}
    panel["component"] = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {"value": 95},
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {"value": 60},
        },
    ]
    resources = vitals()
    resources[2] = panel
    assert parts(score(runtime, news2, resources))["systolic-blood-pressure"] == 2


def test_last_reading_wins_and_excluded_ones_are_ignored(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals, obs: Obs
) -> None:
    resources = [
        *vitals(),
        obs("hr", 135, index=5),
        obs("hr", 45, index=6, status="entered-in-error"),
    ]
    result = score(runtime, news2, resources)
    assert parts(result)["pulse"] == 3
    assert {"reference": "input:5"} in result["derivedFrom"]
    assert {"reference": "input:3"} not in result["derivedFrom"]


def test_fahrenheit_and_foreign_codes_are_not_used(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals
) -> None:
    resources = vitals()
    resources[4]["valueQuantity"] = {"value": 98.6, "code": "[degF]"}
    resources[3]["code"]["coding"][0]["system"] = "http://example.org/local"
    assert runtime.call(news2, "derive", resources).items == []
    outcome = runtime.call(news2, "operation", resources).items[0]
    assert outcome["resourceType"] == "OperationOutcome"
    missing = [i["diagnostics"] for i in outcome["issue"]]
    assert missing == ["NEWS2 needs heart rate (8867-4)", "NEWS2 needs temperature (8310-5)"]


def test_validate_trigger_has_no_issues(
    runtime: PluginRuntime, news2: Plugin, vitals: Vitals
) -> None:
    assert runtime.call(news2, "validate", vitals()).items == []


def test_news2_needs_no_capability(runtime: PluginRuntime, news2: Plugin) -> None:
    assert list(runtime.inspect(news2).imports) == []
