"""``Observation/$lastn`` and ``Observation/$stats``: the vitals time-series operations.

``$lastn`` reads the resource table's (patient_id, code, effective_start DESC) index; ``$stats``
aggregates ``fhir_vital`` (a TimescaleDB hypertable when available, else BRIN + btree), bucketed
with ``time_bucket`` or PostgreSQL's ``date_bin``. Codes are the first coding's ``system|code``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from healthstack.core.dates import instant_text
from healthstack.fhir import query as query_model
from healthstack.fhir import search
from healthstack.fhir.access import Caller, redact
from healthstack.fhir.ops import Engine
from healthstack.fhir.store import Version
from healthstack.numbers import ascii_int

LASTN_SQL = """
SELECT id, version, deleted, last_updated, key_id, body FROM (
  SELECT r.*, row_number() OVER (PARTITION BY r.code
                                 ORDER BY r.effective_start DESC NULLS LAST, r.id DESC) AS n
  FROM fhir_resource r
  WHERE r.resource_type = 'Observation' AND NOT r.deleted AND r.patient_id = $1
    AND ($2::text[] IS NULL OR r.codes && $2) AND ($3::text[] IS NULL OR r.categories && $3)
) ranked WHERE n <= $4
ORDER BY code, effective_start DESC NULLS LAST, id DESC
"""
STATS_COLUMNS = "count(*) AS n, min(value) AS lo, max(value) AS hi, avg(value::numeric)::float8 AS mean, min(unit) AS unit"
STATS_SQL = f"""
SELECT code, NULL::timestamptz AS bucket, {STATS_COLUMNS} FROM fhir_vital
WHERE patient_id = $1 AND code = ANY($2) AND effective >= $3 AND effective < $4
GROUP BY code ORDER BY code
"""
BUCKETED_SQL = """
SELECT code, {fn}($5::interval, effective{origin}) AS bucket, {cols} FROM fhir_vital
WHERE patient_id = $1 AND code = ANY($2) AND effective >= $3 AND effective < $4
GROUP BY code, bucket ORDER BY code, bucket
"""
MAX_LASTN = 100
BUCKET_ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"
STATISTICS = ("count", "minimum", "maximum", "average")
_BUCKET = re.compile(r"^([1-9][0-9]{0,3})(min|h|d)$")
_UNITS = {"min": "minutes", "h": "hours", "d": "days"}
STATS_SYSTEM = "http://hl7.org/fhir/observation-statistics"


def _one(params: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise query_model.bad(name, "give it once")
    return values[0] if values else None


def _patient(params: list[tuple[str, str]], caller: Caller) -> str:
    raw = _one(params, "patient") or _one(params, "subject")
    if not raw:
        raise query_model.bad("patient", "is required")
    return raw.removeprefix("Patient/")


def _check_names(params: list[tuple[str, str]], allowed: tuple[str, ...]) -> None:
    for name, _ in params:
        if name not in allowed:
            raise query_model.bad(name, f"not supported here (use {', '.join(allowed)})")


async def lastn(
    eng: Engine, caller: Caller, conn: asyncpg.Connection, params: list[tuple[str, str]]
) -> list[Version]:
    await caller.authorize("Observation", "operation", detail="$lastn")
    _check_names(params, ("patient", "subject", "code", "category", "max"))
    patient = _patient(params, caller)
    wanted = ascii_int(_one(params, "max") or "1", MAX_LASTN)
    if wanted is None or wanted < 1:
        raise query_model.bad("max", f"must be an integer from 1 to {MAX_LASTN}")
    code, category = _one(params, "code"), _one(params, "category")
    codes = search.token_values("code", code) if code else None
    categories = search.token_values("category", category) if category else None
    rows = []
    if caller.patient in (None, patient):  # outside the compartment: nothing, not an error
        rows = await conn.fetch(LASTN_SQL, patient, codes, categories, wanted)
    await caller.audit(
        conn, "operation", "Observation", detail="$lastn", query=redact("Observation", params)
    )
    return [eng.store.open("Observation", row["id"], row) for row in rows]


@dataclass
class StatsRequest:
    patient: str
    codes: list[str]
    start: dt.datetime
    end: dt.datetime
    bucket: str | None = None
    statistics: tuple[str, ...] = STATISTICS
    rows: list[Any] = field(default_factory=list)


def parse_stats(params: list[tuple[str, str]], caller: Caller) -> StatsRequest:
    names = ("patient", "subject", "code", "system", "start", "end", "duration", "interval",
             "statistic")  # fmt: skip
    _check_names(params, names)
    codes = _stats_codes(params)
    start, end = _stats_period(params)
    request = StatsRequest(_patient(params, caller), codes, start, end)
    request.bucket = _bucket(_one(params, "interval"))
    wanted = _one(params, "statistic")
    if wanted:
        request.statistics = tuple(wanted.split(","))
        if not set(request.statistics) <= set(STATISTICS):
            raise query_model.bad("statistic", f"supported: {', '.join(STATISTICS)}")
    return request


def _stats_codes(params: list[tuple[str, str]]) -> list[str]:
    # The spec's form is code=X&system=S; ours also takes code=S|X as search does.
    system = _one(params, "system")
    raw = [c for k, v in params if k == "code" for c in search.token_values("code", v)]
    codes = [c if "|" in c or not system else f"{system}|{c}" for c in raw]
    if not codes or not all("|" in c and not c.startswith("|") for c in codes):
        raise query_model.bad("code", "one or more codes with a system (system|code) are required")
    return codes


def _stats_period(params: list[tuple[str, str]]) -> tuple[dt.datetime, dt.datetime]:
    start, end, duration = _one(params, "start"), _one(params, "end"), _one(params, "duration")
    if duration and not (start or end):
        # The spec's `duration`: that many hours back from now.
        try:
            hours = float(duration)
        except ValueError:
            raise query_model.bad("duration", "expected a number of hours") from None
        if not 0 < hours <= 24 * 366 * 10:
            raise query_model.bad("duration", "expected a positive number of hours")
        now = dt.datetime.now(dt.UTC)
        return now - dt.timedelta(hours=hours), now
    if not start or not end:
        raise query_model.bad("start", "start and end (FHIR dateTime), or duration, are required")
    return (
        query_model.parse_prefixed("start", start)[1][0],
        query_model.parse_prefixed("end", end)[1][0],
    )


def _bucket(raw: str | None) -> str | None:
    if raw is None:
        return None
    match = _BUCKET.match(raw)
    if not match:
        raise query_model.bad("interval", "expected e.g. 15min, 1h or 1d")
    return f"{match.group(1)} {_UNITS[match.group(2)]}"


async def stats(
    eng: Engine,
    caller: Caller,
    conn: asyncpg.Connection,
    params: list[tuple[str, str]],
    bucket_fn: str,
) -> dict[str, Any]:
    await caller.authorize("Observation", "operation", detail="$stats")
    request = parse_stats(params, caller)
    if caller.patient in (None, request.patient):
        args: list[Any] = [request.patient, request.codes, request.start, request.end]
        sql = STATS_SQL
        if request.bucket:
            # One origin for both backends (time_bucket's default, Monday 2000-01-03 UTC), so
            # buckets of 3d, 5h or 7d are the same on TimescaleDB and on plain PostgreSQL.
            origin = f", {BUCKET_ORIGIN}"
            sql = BUCKETED_SQL.format(fn=bucket_fn, origin=origin, cols=STATS_COLUMNS)
            args.append(_interval(request.bucket))
        request.rows = await conn.fetch(sql, *args)
    await caller.audit(
        conn, "operation", "Observation", detail="$stats", query=redact("Observation", params)
    )
    return stats_parameters(request)


def _code_concept(code: str) -> dict[str, Any]:
    system, _, value = code.partition("|")
    return {"coding": [{"system": system, "code": value}]}


def _component(statistic: str, row: Any) -> dict[str, Any]:
    concept = {"coding": [{"system": STATS_SYSTEM, "code": statistic}]}
    if statistic == "count":
        return {"code": concept, "valueInteger": row["n"]}
    value = {"minimum": row["lo"], "maximum": row["hi"], "average": row["mean"]}[statistic]
    quantity: dict[str, Any] = {"value": round(float(value), 6)}
    if row["unit"]:
        quantity["unit"] = row["unit"]
    return {"code": concept, "valueQuantity": quantity}


def _statistic(request: StatsRequest, row: Any) -> dict[str, Any]:
    start = row["bucket"] or request.start
    end = min(start + _interval(request.bucket), request.end) if row["bucket"] else request.end
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": _code_concept(row["code"]),
        "subject": {"reference": f"Patient/{request.patient}"},
        "effectivePeriod": {
            "start": instant_text(max(start, request.start)),
            "end": instant_text(end),
        },
        "component": [_component(s, row) for s in request.statistics],
    }


def _interval(bucket: str | None) -> dt.timedelta:
    if bucket is None:
        return dt.timedelta(0)
    amount, unit = bucket.split()
    return dt.timedelta(**{unit: int(amount)})


def stats_parameters(request: StatsRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Parameters"}
    if request.rows:  # FHIR JSON forbids empty arrays
        body["parameter"] = [
            {"name": "statistic", "resource": _statistic(request, row)} for row in request.rows
        ]
    return body
