"""``drill db-outage``: stop PostgreSQL under write load, start it again, lose nothing acknowledged.

Writes are conditional creates; every one answered 2xx (before, during or after the outage) is read
back by id at the end. While the database is down, readiness of every replica must turn 503 (so the
endpoints stop routing to them) while liveness stays 200 (so nothing restarts them); after the
database returns, readiness must recover in the same processes, and writes must be acknowledged
again within ``write_bound_s`` (readiness probe period x (successThreshold + 1) + 5 s to reconnect),
with no failed request started after that bound. The database runs with ``fsync=on``, as in
production. A second outage hangs the database instead (``SIGSTOP`` of the postmaster and every
backend: sockets stay open, nothing answers, as with a frozen VM or a network partition), then
resumes it (``SIGCONT``), with the same targets plus one of its own: every request started while
the database hangs is answered within ``answer_bound_s`` (the service's statement and connect
timeouts, read from the manifests), so clients can retry elsewhere instead of queueing behind a
frozen server; the hang lasts twice that bound, so a service without timeouts misses it.

Two negative controls, each of which must FAIL: the database comes back at another address, so
the service can never re-open its pool (writes never recover); and the hang, against a service
whose database timeouts are switched off (requests wait for the server to thaw).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from healthstack.ops.drills.cluster import Cluster, Replica, cluster
from healthstack.ops.drills.failover import promote, start_standby
from healthstack.ops.drills.fhir import LOOPBACK, FhirClient, write_picker
from healthstack.ops.drills.load import LoadGenerator, LoadResult
from healthstack.ops.drills.spec import RolloutSpec
from healthstack.service.embedded_pg import EmbeddedPostgres, free_port

RECONNECT_SECONDS = 5.0  # pool re-open and connect timeouts: not faster with the time scale


def write_bound(spec: RolloutSpec) -> float:
    """Writes must be acknowledged again this soon after the database is back."""
    return spec.probe_period * (spec.success_threshold + 1) + RECONNECT_SECONDS


def answer_bound(spec: RolloutSpec) -> float:
    """While the database hangs, every request is answered (a 503) this soon.

    A request may wait once for a pooled connection (bounded by the statement timeout), once for a
    new connection, and once for its statement; then the audit record of its failure waits the
    same way; plus a second for scheduling on a loaded machine. With no timeouts (0) the bound
    is meaningless, so it is computed from the deployed values, never from the control's.
    """
    return 2 * (2 * spec.statement_timeout + spec.connect_timeout) + 1.0


@dataclass
class OutageReport:
    outage_s: float
    write_bound_s: float = 0.0
    reconnectable: bool = True
    kind: str = "stop"  # or "hang" (SIGSTOP), or "failover" (standby promoted)
    fsync: bool = False  # as the server reports it (SHOW fsync)
    api: bool = True
    load: dict[str, Any] = field(default_factory=dict)
    acknowledged: int = 0
    lost: int = 0
    acknowledged_during_outage: int = 0
    unready_during_outage: bool = False
    live_during_outage: bool = False
    restarts: int = 0
    ready_recovery_s: float | None = None
    write_recovery_s: float | None = None
    failed_after_bound: int = 0
    # Answers that are the service's own fault, not the outage's: any 5xx but 503 (unavailable,
    # retry) and 504 (the balancer's timeout). A 500 here once came from an unmapped asyncpg error.
    server_errors: int = 0
    answer_bound_s: float | None = None  # hang only: see answer_bound
    slowest_answer_s: float | None = (
        None  # hang only: of the requests waiting on the frozen database
    )
    hang: OutageReport | None = None
    failover: OutageReport | None = None

    @property
    def passed(self) -> bool:
        recovered = (
            self.write_recovery_s is not None and self.write_recovery_s <= self.write_bound_s
        )
        return (
            self.api
            and recovered
            and self.failed_after_bound == 0
            and self.server_errors == 0
            and self.acknowledged > 0
            and self.lost == 0
            and self.restarts == 0
            and self.unready_during_outage
            and self.live_during_outage
            and self.ready_recovery_s is not None
            and self._answered_in_time()
            and (self.hang is None or self.hang.passed)
            and (self.failover is None or self.failover.passed)
        )

    def _answered_in_time(self) -> bool:
        if self.answer_bound_s is None:
            return True
        return self.slowest_answer_s is not None and self.slowest_answer_s <= self.answer_bound_s

    def to_dict(self) -> dict[str, Any]:
        hang = self.hang.to_dict() if self.hang else None
        failover = self.failover.to_dict() if self.failover else None
        return {
            "drill": "db-outage",
            "passed": self.passed,
            **self.__dict__,
            "hang": hang,
            "failover": failover,
        }


def server_pids(pg: EmbeddedPostgres) -> list[int]:
    """The postmaster (first line of postmaster.pid) and every process it started."""
    postmaster = int((pg.pgdata / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # Fields after the parenthesised command name: state, ppid, ...
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _status(replica: Replica, path: str) -> int:
    with contextlib.suppress(httpx.HTTPError):
        return LOOPBACK.get(f"{replica.url}{path}", timeout=2).status_code
    return 0


def _watch_outage(replicas: list[Replica], seconds: float, report: OutageReport) -> None:
    """During the outage: every replica unready at some point, and live throughout."""
    deadline = time.monotonic() + seconds
    unready: set[str] = set()
    live = True
    while time.monotonic() < deadline:
        for replica in replicas:
            # No answer in time counts as unready, as for the kubelet (a probe timeout fails).
            if _status(replica, "/health/ready") in (0, 503):
                unready.add(replica.slot.name)
            live = live and _status(replica, "/health") == 200
        time.sleep(0.05)
    report.unready_during_outage = len(unready) == len(replicas)
    report.live_during_outage = live


def _wait_recovered(
    replicas: list[Replica], load: LoadGenerator, timeout: float, report: OutageReport
) -> None:
    restarted = time.monotonic()
    acked = len(load.result.acknowledged)
    while time.monotonic() - restarted < timeout:
        if report.write_recovery_s is None and len(load.result.acknowledged) > acked:
            report.write_recovery_s = time.monotonic() - restarted
            load.result.mark("first write acknowledged")
        if report.ready_recovery_s is None and all(
            _status(r, "/health/ready") == 200 for r in replicas
        ):
            report.ready_recovery_s = time.monotonic() - restarted
        if report.ready_recovery_s is not None and report.write_recovery_s is not None:
            return
        time.sleep(0.05)


def _verify(client: FhirClient, result: LoadResult, report: OutageReport) -> None:
    report.acknowledged = len(result.acknowledged)
    report.lost = sum(1 for rid in result.acknowledged if client.read(rid) != 200)


def run_db_outage(
    spec: RolloutSpec,
    *,
    outage_s: float = 10.0,
    before_s: float = 2.0,
    after_s: float = 3.0,
    workers: int = 8,
    reconnectable: bool = True,
    hang: bool = True,
    failover: bool = True,
) -> OutageReport:
    """``reconnectable=False`` is the first negative control (the database returns elsewhere)."""
    report = OutageReport(outage_s, write_bound(spec), reconnectable)
    phases = (before_s, outage_s, after_s)
    with cluster(spec, fsync=True) as state:
        report.fsync = state.pg.psql("SHOW fsync").strip() == "on"
        replicas = state.fleet(spec.replicas)
        pids = [r.process.pid for r in replicas]
        assert state.haproxy is not None
        client = FhirClient.for_secret(state.haproxy.url, state.secret_key_base)
        report.api = client.detect()
        if not report.api:
            return report
        _phase(state, client, replicas, pids, report, phases, workers)
        if hang and reconnectable:
            report.hang = _hang_phase(state, client, replicas, pids, phases, workers, spec)
        if failover and reconnectable:
            report.failover = OutageReport(outage_s, report.write_bound_s, kind="failover")
            standby = start_standby(state.pg, state.workdir / "standby")
            try:
                _phase(state, client, replicas, pids, report.failover, phases, workers, standby)
            finally:
                standby.destroy()
    return report


def run_hang_without_timeouts(
    spec: RolloutSpec, *, outage_s: float, before_s: float, after_s: float, workers: int
) -> OutageReport:
    """The second negative control: the hang, against a service with no database timeouts.

    The bound stays the deployed one (``spec``'s timeouts); only the service loses them.
    """
    unprotected = replace(spec, statement_timeout=0.0, connect_timeout=0.0)
    phases = (before_s, outage_s, after_s)
    with cluster(unprotected, fsync=True) as state:
        replicas = state.fleet(spec.replicas)
        pids = [r.process.pid for r in replicas]
        assert state.haproxy is not None
        client = FhirClient.for_secret(state.haproxy.url, state.secret_key_base)
        if not client.detect():
            return OutageReport(outage_s, api=False, kind="hang")
        return _hang_phase(state, client, replicas, pids, phases, workers, spec)


def _hang_phase(
    state: Cluster,
    client: FhirClient,
    replicas: list[Replica],
    pids: list[int],
    phases: tuple[float, float, float],
    workers: int,
    deployed: RolloutSpec,
) -> OutageReport:
    """The hang lasts two answer bounds, and no client gives up before it ends."""
    bound = answer_bound(deployed)
    before_s, outage_s, after_s = phases
    hang_s = max(outage_s, 2 * bound)
    report = OutageReport(hang_s, write_bound(deployed), kind="hang", answer_bound_s=bound)
    patient = replace(client, timeout=hang_s + bound + 10.0)
    _phase(state, patient, replicas, pids, report, (before_s, hang_s, after_s), workers)
    return report


def _phase(
    state: Cluster,
    client: FhirClient,
    replicas: list[Replica],
    pids: list[int],
    report: OutageReport,
    phases: tuple[float, float, float],
    workers: int,
    standby: EmbeddedPostgres | None = None,
) -> None:
    result = _outage(state, client, replicas, report, phases, workers, standby)
    report.restarts = sum(
        1 for r, pid in zip(replicas, pids, strict=True) if not r.alive() or r.process.pid != pid
    )
    report.load = result.summary()
    _verify(client, result, report)


def _outage(
    state: Cluster,
    client: FhirClient,
    replicas: list[Replica],
    report: OutageReport,
    phases: tuple[float, float, float],
    workers: int,
    standby: EmbeddedPostgres | None = None,
) -> LoadResult:
    before_s, outage_s, after_s = phases
    load = LoadGenerator(client, write_picker(client), workers=workers).start()
    time.sleep(before_s)
    hung = server_pids(state.pg) if report.kind == "hang" else []
    freezing = time.monotonic()
    load.result.mark("database frozen" if hung else "database stopped")
    if hung:
        _signal_all(hung, signal.SIGSTOP)
    else:
        state.pg.stop("immediate" if standby else "fast")
    acked_before = len(load.result.acknowledged)
    try:
        _watch_outage(replicas, outage_s, report)
    finally:
        _signal_all(hung, signal.SIGCONT)  # never leave a frozen server behind
    thawed = time.monotonic()
    report.acknowledged_during_outage = len(load.result.acknowledged) - acked_before
    if not report.reconnectable:
        state.pg.port = free_port()
    if standby:
        promote(state.pg, standby)
    elif not hung:
        state.pg.start()
    back = time.monotonic()
    load.result.mark("database thawed" if hung else "standby promoted" if standby
                     else "database restarted")  # fmt: skip
    _wait_recovered(replicas, load, report.write_bound_s + 1.0, report)
    time.sleep(after_s)
    result = load.stop()
    bound = back + report.write_bound_s
    report.failed_after_bound = sum(1 for s in result.samples if s.started > bound and s.failure)
    report.server_errors = sum(1 for s in result.samples if _server_error(s.failure))
    if report.answer_bound_s is not None:
        report.slowest_answer_s = _slowest_wait(result, freezing, thawed)
    return result


def _server_error(failure: str | None) -> bool:
    """``http:5xx`` other than 503 and 504 (``FhirClient`` names failures ``http:<status>``)."""
    if failure is None or not failure.startswith("http:5"):
        return False
    return failure not in ("http:503", "http:504")


def _slowest_wait(result: LoadResult, frozen: float, thawed: float) -> float | None:
    """The longest any request waited on the hung database: started during the hang, or in
    flight when it began (with every worker busy, those are often the only ones that reach a
    replica before readiness fails), timed from the later of its start and the freeze."""
    waits = [s.started + s.latency - max(s.started, frozen) for s in result.samples
             if s.started < thawed and s.started + s.latency > frozen]  # fmt: skip
    return round(max(waits), 3) if waits else None
