"""Vitals as a time series: ingest by transaction Bundle, then $lastn and $stats on known numbers."""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

import httpx
import pytest

LOINC = "http://loinc.org"
HR, SBP = "8867-4", "8480-6"
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _value(code: str, i: int) -> float:
    return 60 + (i * 7) % 41 if code == HR else 110 + (i * 3) % 29 + 0.5


def _obs(pid: str, code: str, i: int) -> dict[str, Any]:
    when = START + dt.timedelta(minutes=30 * i)
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "valueQuantity": {
            "value": _value(code, i),
            "unit": "1/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


@pytest.fixture(scope="module")
def series(fhir: httpx.Client) -> str:
    """96 heart rates and 96 systolic pressures every 30 minutes over two days (one patient)."""
    pid = fhir.post("/Patient", json={"resourceType": "Patient", "gender": "female"}).json()["id"]
    entries = [
        {"resource": _obs(pid, code, i), "request": {"method": "POST", "url": "Observation"}}
        for code in (HR, SBP)
        for i in range(96)
    ]
    response = fhir.post(
        "",
        json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
        headers={"Prefer": "return=minimal"},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["entry"]) == 192
    return pid


def test_lastn_returns_latest_n_per_code(fhir: httpx.Client, series: str) -> None:
    bundle = fhir.get(f"/Observation/$lastn?patient={series}&max=3").json()
    got = [
        (e["resource"]["code"]["coding"][0]["code"], e["resource"]["valueQuantity"]["value"])
        for e in bundle["entry"]
    ]
    expected = [(c, _value(c, i)) for c in sorted((HR, SBP)) for i in (95, 94, 93)]
    assert got == expected
    only_hr = fhir.get(f"/Observation/$lastn?patient={series}&code={LOINC}|{HR}").json()
    assert len(only_hr["entry"]) == 1
    assert fhir.get(f"/Observation/$lastn?patient={series}&max=0").status_code == 400
    assert fhir.get("/Observation/$lastn?max=2").status_code == 400


def test_stats_over_a_period(fhir: httpx.Client, series: str) -> None:
    # Day one only: indices 0..47.
    query = (
        f"/Observation/$stats?patient={series}&code={LOINC}|{HR}"
        "&start=2024-01-01T00:00:00Z&end=2024-01-02T00:00:00Z"
    )
    params = fhir.get(query).json()
    assert params["resourceType"] == "Parameters"
    assert len(params["parameter"]) == 1
    components = {
        c["code"]["coding"][0]["code"]: c for c in params["parameter"][0]["resource"]["component"]
    }
    values = [_value(HR, i) for i in range(48)]
    assert components["count"]["valueInteger"] == 48
    assert components["minimum"]["valueQuantity"]["value"] == min(values)
    assert components["maximum"]["valueQuantity"]["value"] == max(values)
    assert components["average"]["valueQuantity"]["value"] == pytest.approx(
        statistics.fmean(values)
    )


def test_stats_bucketed(fhir: httpx.Client, series: str) -> None:
    query = (
        f"/Observation/$stats?patient={series}&code={LOINC}|{SBP}&interval=6h"
        "&start=2024-01-01T00:00:00Z&end=2024-01-03T00:00:00Z&statistic=count,average"
    )
    buckets = [p["resource"] for p in fhir.get(query).json()["parameter"]]
    assert len(buckets) == 8
    for n, bucket in enumerate(buckets):
        values = [_value(SBP, i) for i in range(12 * n, 12 * n + 12)]
        count, average = bucket["component"]
        assert count["valueInteger"] == 12
        assert average["valueQuantity"]["value"] == pytest.approx(statistics.fmean(values))
        assert bucket["effectivePeriod"]["start"].startswith(
            f"2024-01-0{1 + n // 4}T{(n % 4) * 6:02d}"
        )


def test_stats_strict_parameters(fhir: httpx.Client, series: str) -> None:
    base = f"/Observation/$stats?patient={series}&start=2024-01-01&end=2024-01-02"
    assert fhir.get(f"{base}&code={HR}").status_code == 400  # needs system|code
    assert fhir.get(f"{base}&code={LOINC}|{HR}&interval=7weeks").status_code == 400
    assert fhir.get(f"{base}&code={LOINC}|{HR}&statistic=median").status_code == 400
    assert fhir.get(f"{base}&code={LOINC}|{HR}&bogus=1").status_code == 400


def test_deleted_observation_leaves_the_series(fhir: httpx.Client, series: str) -> None:
    latest = fhir.get(f"/Observation/$lastn?patient={series}&code={LOINC}|{HR}").json()["entry"][0]
    assert fhir.delete(f"/Observation/{latest['resource']['id']}").status_code == 204
    query = (
        f"/Observation/$stats?patient={series}&code={LOINC}|{HR}"
        "&start=2024-01-01T00:00:00Z&end=2024-01-03T00:00:00Z&statistic=count"
    )
    count = fhir.get(query).json()["parameter"][0]["resource"]["component"][0]["valueInteger"]
    assert count == 95
    again = fhir.get(f"/Observation/$lastn?patient={series}&code={LOINC}|{HR}").json()["entry"][0]
    assert again["resource"]["valueQuantity"]["value"] == _value(HR, 94)


def test_bucket_sql_for_both_backends() -> None:
    from healthstack.fhir.vitals import BUCKETED_SQL, STATS_COLUMNS

    plain = BUCKETED_SQL.format(
        fn="date_bin", origin=", TIMESTAMPTZ '2000-01-01'", cols=STATS_COLUMNS
    )
    tsdb = BUCKETED_SQL.format(fn="time_bucket", origin="", cols=STATS_COLUMNS)
    assert "date_bin($5::interval, effective, TIMESTAMPTZ '2000-01-01')" in plain
    assert "time_bucket($5::interval, effective)" in tsdb


def test_stats_accepts_the_spec_parameter_forms(fhir: httpx.Client, series: str) -> None:
    period = "&start=2024-01-01T00:00:00Z&end=2024-01-02T00:00:00Z&statistic=count"
    ours = fhir.get(f"/Observation/$stats?patient={series}&code={LOINC}|{HR}{period}").json()
    spec = fhir.get(
        f"/Observation/$stats?subject=Patient/{series}&code={HR}&system={LOINC}{period}"
    )
    assert spec.status_code == 200, spec.text
    assert spec.json()["parameter"] == ours["parameter"]
    # `duration`: hours back from now; the series is from 2024, so nothing is counted.
    recent = fhir.get(f"/Observation/$stats?patient={series}&code={LOINC}|{HR}&duration=24")
    assert recent.status_code == 200, recent.text
    counts = [
        p["resource"]["component"][0]["valueInteger"] for p in recent.json().get("parameter", [])
    ]
    assert sum(counts) == 0
    bad = fhir.get(f"/Observation/$stats?patient={series}&code={LOINC}|{HR}&duration=-3")
    assert bad.status_code == 400
