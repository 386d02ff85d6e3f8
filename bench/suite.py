"""``make bench``: the service against what the hardware and the database allow, side by side.

One private PostgreSQL, one service process (one worker, as in a pod) seeded through its own API,
then per case the API under wrk and its raw-database baseline (bench.rawdb) with the same
concurrency, duration and pool size. Prints one table and writes bench/results/suite.json.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import memory, workload
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
from bench.rawdb import Spec
from bench.seed import seed
from healthstack.core.crypto import Keyring
from healthstack.security.tokens import mint_dev_token

LUA = Path(__file__).with_name("lua")
SCOPES = "user/*.cruds system/*.cruds"
TARGETS = {"read_ratio": 0.60, "ingest_ratio": 0.25, "read_p99_ms": 20.0, "rss_mib": 150.0,
           "ready_s": 2.0}  # fmt: skip


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
    name: str = "suite"  # results file bench/results/NAME.json


@dataclass
class Row:
    name: str
    unit: str
    api: WrkResult
    raw: dict[str, float] | None = None
    per_request: int = 1

    @property
    def ratio(self) -> float | None:
        if self.raw is None:
            return None
        return self.api.requests_per_s / self.raw["requests_per_s"]


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
    url: str, case: workload.Case, options: Options, workdir: Path
) -> dict[str, float]:
    connections = options.connections if case.body is None else options.ingest_connections
    spec = Spec(url, options.pool_size, connections, options.seconds, options.warmup, case.raw)
    path = workdir / "raw.pickle"
    path.write_bytes(pickle.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.rawdb", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.rawdb failed for {case.name!r}: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


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
    base: str, case: workload.Case, token: str, options: Options, workdir: Path
) -> WrkResult:
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
    return wrk(url, seconds=options.seconds, **run)  # type: ignore[arg-type]


CEILINGS = (("/health", "ceiling: /health"), ("/health/ready", "/health/ready (1 query)"))


def ceilings(report: Report, base: str) -> None:
    """The same server stack with no I/O, and with one pooled round trip (no baseline: context)."""
    options = report.options
    for path, name in CEILINGS:
        if options.warmup > 0:
            wrk(base + path, connections=options.connections, seconds=options.warmup)
        result = wrk(base + path, connections=options.connections, seconds=options.seconds)
        report.rows.append(Row(name, "req/s", result))


def measure(report: Report, running: Running, env: dict[str, str], workdir: Path) -> None:
    options, base, pid = report.options, running.base_url, running.process.pid
    token = mint_dev_token(env["SECRET_KEY_BASE"], "bench", SCOPES, ttl_seconds=3600)
    seeded = seed(base, token, options.patients, options.per_patient)
    report.seeded = {"patients": len(seeded.patient_ids), "observations": seeded.observations,
                     "conditions": seeded.conditions, "seconds": round(seeded.seconds, 1)}  # fmt: skip
    keyring = Keyring(bytes.fromhex(env["ENCRYPTION_KEY"]))
    # Ingest last: its COPY baseline writes rows the API could not decrypt (their ids change).
    cases = [*workload.reads(seeded, keyring), workload.ingest(seeded.patient_ids[0], keyring)]
    with memory.sampling(pid) as sampler:
        ceilings(report, base)
        for case in cases:
            api = api_load(base, case, token, options, workdir)
            raw = raw_baseline(env["DATABASE_URL"], case, options, workdir)
            unit = "req/s" if case.resources_per_request == 1 else "resources/s"
            report.rows.append(Row(case.name, unit, api, raw, case.resources_per_request))
    report.rss_under_load_mib = sampler.peak_rss_mib
    report.rss_after_mib = memory.mib(pid, "VmRSS")
    report.hwm_mib = memory.mib(pid, "VmHWM")


def run(options: Options) -> Report:
    report = Report(options)
    with tempfile.TemporaryDirectory(prefix="hs-bench-work-") as scratch, postgres() as pg:
        env = service_env(pg, POOL_SIZE=str(options.pool_size))
        report.ready_seconds = startup_times(env, options.starts)
        port = free_port()
        with launch(healthstack_command(port), env, port) as running:
            measure(report, running, env, Path(scratch))
    return report
