"""``make bench``: the service against what the hardware and the database allow, side by side.

One private PostgreSQL, one service process (one worker, as in a pod) seeded through its own API,
then per case the API under wrk and its raw-database baseline (bench.rawdb) with the same
concurrency, duration and pool size. Prints one table and writes bench/results/suite.json.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import memory, openloop, workload
from bench.common import (
    Running,
    WrkResult,
    free_port,
    healthstack_command,
    launch,
    postgres,
    service_env,
    wrk,
)
from bench.cpu import CpuWindow, postmaster_pid
from bench.rawdb import Spec
from bench.seed import seed
from healthstack.core.crypto import Keyring
from healthstack.ops.progress import Meter
from healthstack.security.tokens import mint_dev_token

LUA = Path(__file__).with_name("lua")
SCOPES = "user/*.cruds system/*.cruds"
# Issue 18's targets: medians of ``repeats`` runs in one invocation.
TARGETS = {"read_ratio": 0.60, "search_ratio": 0.50, "ingest_ratio": 0.35,
           "steady_p99_ms": 20.0, "rss_mib": 150.0, "ready_s": 2.0}  # fmt: skip
STEADY_FRACTION = 0.5  # the open-loop rate, as a fraction of the case's measured maximum


@dataclass
class Options:
    seconds: float = 8.0
    warmup: float = 1.0
    connections: int = 32
    # Ingest pair: a 100-entry Bundle holds a connection for its whole transaction; 32 of them
    # would mostly queue on the pool of 10 and measure waiting. Both sides use this value.
    ingest_connections: int = 4
    pool_size: int = 10
    patients: int = 1000
    per_patient: int = 100
    starts: int = 5
    repeats: int = 3  # every API run and its baseline, interleaved; figures are medians
    name: str = "suite"  # results file bench/results/NAME.json


@dataclass
class Run:
    """One measured API run, its raw baseline, and what each cost in CPU per request."""

    api: WrkResult
    raw: dict[str, float] | None = None
    service_cpu_ms: float = 0.0  # the service process, per request
    api_db_cpu_ms: float = 0.0  # PostgreSQL (every backend), per API request
    raw_cpu_ms: float | None = None  # the baseline program, per operation
    raw_db_cpu_ms: float | None = None  # PostgreSQL, per baseline operation

    @property
    def ratio(self) -> float | None:
        if self.raw is None:
            return None
        return self.api.requests_per_s / self.raw["requests_per_s"]


def median_range(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max): the figure and its spread, never the best run alone."""
    return statistics.median(values), min(values), max(values)


@dataclass
class Row:
    name: str
    unit: str
    runs: list[Run]
    per_request: int = 1
    steady: list[openloop.OpenLoopResult] = field(default_factory=list)

    @property
    def api(self) -> WrkResult:
        """The run with the median throughput (its latencies go with it)."""
        ordered = sorted(self.runs, key=lambda r: r.api.requests_per_s)
        return ordered[len(ordered) // 2].api

    @property
    def raw(self) -> dict[str, float] | None:
        raws = [r.raw for r in self.runs if r.raw is not None]
        if not raws:
            return None
        ordered = sorted(raws, key=lambda r: r["requests_per_s"])
        return ordered[len(ordered) // 2]

    @property
    def ratio(self) -> float | None:
        ratios = [r.ratio for r in self.runs if r.ratio is not None]
        return statistics.median(ratios) if ratios else None

    def spread(self, figure: str) -> tuple[float, float, float] | None:
        values = [getattr(r, figure) for r in self.runs]
        if any(v is None for v in values):
            return None
        return median_range(values)

    def ratio_spread(self) -> tuple[float, float, float] | None:
        return self.spread("ratio")

    def steady_p99(self) -> tuple[float, float, float] | None:
        return median_range([s.p99_ms for s in self.steady]) if self.steady else None


@dataclass
class Report:
    options: Options
    rows: list[Row] = field(default_factory=list)
    ready_seconds: list[float] = field(default_factory=list)
    rss_under_load_mib: float = 0.0
    rss_after_mib: float = 0.0
    hwm_mib: float = 0.0
    seeded: dict[str, Any] = field(default_factory=dict)


def startup_times(env: dict[str, str], starts: int) -> list[float]:
    """Seconds from spawning ``healthstack serve`` to a 200 from /health/ready, per start."""
    times = []
    for _ in range(starts):
        port = free_port()
        with launch(healthstack_command(port), env, port) as running:
            times.append(running.ready_seconds)
    return times


def raw_baseline(
    url: str, case: workload.Case, options: Options, workdir: Path, postmaster: int
) -> tuple[dict[str, float], float]:
    """The baseline's figures, and PostgreSQL's CPU ms per baseline operation."""
    connections = options.connections if case.body is None else options.ingest_connections
    spec = Spec(url, options.pool_size, connections, options.seconds, options.warmup, case.raw)
    path = workdir / "raw.pickle"
    path.write_bytes(pickle.dumps(spec))
    with CpuWindow(None, postmaster).measuring() as window:
        done = subprocess.run(
            [sys.executable, "-m", "bench.rawdb", str(path)], capture_output=True, text=True
        )
    if done.returncode != 0:
        raise RuntimeError(f"bench.rawdb failed for {case.name!r}: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result, window.database_s * 1000 / max(1.0, result["iterations_total"])


def probe(base: str, case: workload.Case, token: str) -> None:
    """One request of the case first: wrk counts 3xx as success, so a wrong URL must fail here."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": workload.FHIR_JSON,
               "Prefer": "return=minimal"}  # fmt: skip
    if case.body is not None:
        response = httpx.post(
            f"{base}{workload.API}/", content=case.body, headers=headers, timeout=60
        )
    else:
        response = httpx.get(base + case.paths[0], headers=headers, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(
            f"{case.name}: probe answered {response.status_code}: {response.text[:300]}"
        )
    if case.expect and not case.expect(response.json()):
        raise RuntimeError(f"{case.name}: probe answered an unexpected body: {response.text[:300]}")


def api_load(
    base: str, case: workload.Case, token: str, options: Options, workdir: Path, window: CpuWindow
) -> WrkResult:
    """The case under wrk; ``window`` measures CPU over the measured run (not the warm-up)."""
    data = workdir / "wrk.data"
    if case.body is not None:
        data.write_bytes(case.body)
        script, url = LUA / "post.lua", f"{base}{workload.API}/"
    else:
        data.write_text("\n".join(case.paths) + "\n")
        script, url = LUA / "paths.lua", base
    connections = options.connections if case.body is None else options.ingest_connections
    run = dict(connections=connections, script=script, script_args=[str(data)],
               headers=[f"Authorization: Bearer {token}"])  # fmt: skip
    probe(base, case, token)
    if options.warmup > 0:
        wrk(url, seconds=options.warmup, **run)  # type: ignore[arg-type]
    with window.measuring():
        return wrk(url, seconds=options.seconds, **run)  # type: ignore[arg-type]


def steady_load(
    base: str, case: workload.Case, token: str, rate: float, options: Options, workdir: Path
) -> openloop.OpenLoopResult:
    """Open-loop latency at a constant ``rate`` (a fraction of the measured maximum)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    spec = openloop.LoadSpec(host, int(port), case.paths, {"Authorization": f"Bearer {token}",
                             "Accept": workload.FHIR_JSON}, rate, options.seconds)  # fmt: skip
    path = workdir / "openloop.json"
    path.write_text(json.dumps(dataclasses.asdict(spec)))
    done = subprocess.run(
        [sys.executable, "-m", "bench.openloop", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.openloop failed for {case.name!r}: {done.stderr[-2000:]}")
    return openloop.OpenLoopResult(**json.loads(done.stdout))


CEILINGS = (("/health", "ceiling: /health"), ("/health/ready", "/health/ready (1 query)"))


def ceilings(report: Report, base: str) -> None:
    """The same server stack with no I/O, and with one pooled round trip (no baseline: context)."""
    options = report.options
    for path, name in CEILINGS:
        if options.warmup > 0:
            wrk(base + path, connections=options.connections, seconds=options.warmup)
        result = wrk(base + path, connections=options.connections, seconds=options.seconds)
        report.rows.append(Row(name, "req/s", [Run(result)]))


def measure(report: Report, running: Running, env: dict[str, str], pg: Path, workdir: Path) -> None:
    options, base, pid = report.options, running.base_url, running.process.pid
    token = mint_dev_token(env["SECRET_KEY_BASE"], "bench", SCOPES, ttl_seconds=3600)
    seeded = seed(base, token, options.patients, options.per_patient)
    report.seeded = {"patients": len(seeded.patient_ids), "observations": seeded.observations,
                     "conditions": seeded.conditions, "seconds": round(seeded.seconds, 1)}  # fmt: skip
    keyring = Keyring(bytes.fromhex(env["ENCRYPTION_KEY"]))
    # Ingest last: its COPY baseline writes rows the API could not decrypt (their ids change).
    cases = [*workload.reads(seeded, keyring), workload.ingest(seeded.patient_ids[0], keyring)]
    postmaster = postmaster_pid(pg)
    # Each case: its measured runs, then as many steady-load runs where it has no body.
    runs = sum(options.repeats * (2 if case.body is None else 1) for case in cases)
    with memory.sampling(pid) as sampler, Meter("bench", total=runs, unit="runs") as meter:
        ceilings(report, base)
        for case in cases:
            row = Row(case.name, "req/s" if case.resources_per_request == 1 else "resources/s",
                      [], case.resources_per_request)  # fmt: skip
            for _ in range(options.repeats):
                row.runs.append(one_run(case, base, token, options, workdir, pid, postmaster, env))
                meter.update()
            if case.body is None:
                rate = row.api.requests_per_s * STEADY_FRACTION
                for _ in range(options.repeats):
                    row.steady.append(steady_load(base, case, token, rate, options, workdir))
                    meter.update()
            report.rows.append(row)
    report.rss_under_load_mib = sampler.peak_rss_mib
    report.rss_after_mib = memory.mib(pid, "VmRSS")
    report.hwm_mib = memory.mib(pid, "VmHWM")


def one_run(
    case: workload.Case,
    base: str,
    token: str,
    options: Options,
    workdir: Path,
    pid: int,
    postmaster: int,
    env: dict[str, str],
) -> Run:
    """The API run, then its baseline, with the CPU each cost per request."""
    window = CpuWindow(pid, postmaster)
    api = api_load(base, case, token, options, workdir, window)
    raw, raw_db_ms = raw_baseline(env["DATABASE_URL"], case, options, workdir, postmaster)
    requests = max(1, api.requests)
    return Run(
        api,
        raw,
        service_cpu_ms=window.service_s * 1000 / requests,
        api_db_cpu_ms=window.database_s * 1000 / requests,
        raw_cpu_ms=raw["cpu_ms_per_op"],
        raw_db_cpu_ms=raw_db_ms,
    )


def run(options: Options) -> Report:
    report = Report(options)
    with tempfile.TemporaryDirectory(prefix="hs-bench-work-") as scratch, postgres() as pg:
        env = service_env(pg, POOL_SIZE=str(options.pool_size))
        report.ready_seconds = startup_times(env, options.starts)
        port = free_port()
        with launch(healthstack_command(port), env, port) as running:
            measure(report, running, env, pg.pgdata, Path(scratch))
    return report
