"""``drill crash``: ``kill -9`` of one replica under write load, with and without mesh retries.

Each variant gets a fresh HAProxy and fresh replicas on the shared database; writers create
patients, then one replica is killed without warning. Variants differ only in HAProxy's
``retry-on``:

* ``none``: no retries: requests in flight on the dead replica and new connections to it fail;
* ``conn-failure``: the mesh's retry on connect-failure: only requests in flight are lost;
* ``conn-failure empty-response``: also retries requests the dead replica never answered, which
  may resend a POST that was already committed.

Every write is a conditional create (``If-None-Exist``) of a fresh identifier, and the writer
retries it on connection loss (a transport error, or the proxy's 502/503/504) until it is
acknowledged; every ``LOST_EVERY``-th acknowledged create is sent once more, as a client does whose
answer was lost after the commit. Afterwards a search per identifier counts duplicates (more than
one Patient) and losses (acknowledged, but none). Target: 0 of each. Control: the same writers
without ``If-None-Exist`` (plain creates), which must produce duplicates.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from healthstack.ops.drills import timeline
from healthstack.ops.drills.cluster import Cluster, cluster
from healthstack.ops.drills.fhir import FhirClient
from healthstack.ops.drills.spec import RolloutSpec

VARIANTS = ("none", "conn-failure", "conn-failure empty-response")
CONNECTION_LOST = frozenset({502, 503, 504})
LOST_EVERY = 5
ATTEMPTS = 20


@dataclass
class CrashReport:
    conditional: bool = True
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    identifiers: int = 0
    created_after_kill: int = 0
    acknowledged: int = 0
    retried: int = 0
    duplicates: int = 0
    lost: int = 0
    api: bool = True

    @property
    def passed(self) -> bool:
        exercised = self.created_after_kill > 0 and self.retried > 0
        return self.api and exercised and self.duplicates == 0 and self.lost == 0

    def to_dict(self) -> dict[str, Any]:
        return {"drill": "crash", "passed": self.passed, **self.__dict__}


@dataclass
class Attempt:
    """One POST as the timeline draws it (``timeline.Timed``): no identifier, no content."""

    started: float
    latency: float
    failure: str | None = None


@dataclass
class Write:
    value: str
    started: float
    attempts: int = 0
    connection_lost: int = 0
    acknowledged: bool = False


class Writers:
    """Threads creating fresh identifiers, each retried on connection loss until acknowledged."""

    def __init__(
        self, client: FhirClient, workers: int, conditional: bool, cap: int, pace: float
    ) -> None:
        self.client, self.conditional, self.cap, self.pace = client, conditional, cap, pace
        self.writes: list[Write] = []
        self.failed_attempts: list[float] = []  # start times of attempts that failed
        self.attempts: list[Attempt] = []  # bounded: cap identifiers x ATTEMPTS at most
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def start(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> list[Write]:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=self.client.timeout * ATTEMPTS)
        return self.writes

    def _next(self) -> Write | None:
        with self._lock:
            if self._stop.is_set() or len(self.writes) >= self.cap:
                return None
            write = Write(f"crash-{random.getrandbits(96):x}", time.monotonic())
            self.writes.append(write)
            return write

    def _post(self, http: httpx.Client, value: str) -> bool | None:
        """True: acknowledged; None: connection lost (retry); False: refused for good."""
        op = self.client.op_create(value, self.conditional)
        started = time.monotonic()
        try:
            response = http.request(op.method, op.path, headers=op.headers, content=op.body)
        except httpx.TransportError as error:
            self._attempted(started, type(error).__name__)
            return None
        if op.check(response) is None:
            self._attempted(started, None)
            return True
        self._attempted(started, f"http:{response.status_code}")
        return None if response.status_code in CONNECTION_LOST else False

    def _attempted(self, started: float, failure: str | None) -> None:
        self.attempts.append(Attempt(started, time.monotonic() - started, failure))
        if failure is not None:
            self.failed_attempts.append(started)

    def _run(self) -> None:
        with httpx.Client(base_url=self.client.base_url, timeout=self.client.timeout) as http:
            while (write := self._next()) is not None:
                self._write(http, write)
                # Spread the bounded number of identifiers over the whole observation.
                self._stop.wait(self.pace)

    def _write(self, http: httpx.Client, write: Write) -> None:
        while write.attempts < ATTEMPTS:
            write.attempts += 1
            answer = self._post(http, write.value)
            if answer is None:
                write.connection_lost += 1
                time.sleep(0.05)
                continue
            write.acknowledged = answer
            if answer and len(self.writes) % LOST_EVERY == 0:
                write.attempts += 1
                self._post(http, write.value)  # the answer was "lost": the client sends again
            return


def run_variant(
    state: Cluster, retry_on: str, workers: int, observe_s: float, conditional: bool, cap: int
) -> tuple[dict[str, Any], list[Write], float]:
    replicas = state.fleet(state.spec.replicas, retry_on)
    assert state.haproxy is not None
    client = FhirClient.for_secret(state.haproxy.url, state.secret_key_base)
    pace = workers * observe_s / (cap * 0.8)
    writers = Writers(client, workers, conditional, cap, pace).start()
    while len(writers.writes) < workers * 3 and writers.threads[0].is_alive():
        time.sleep(0.01)
    replicas[0].kill()  # SIGKILL: no preStop, no drain
    killed_at = time.monotonic()
    time.sleep(observe_s)
    writes = writers.stop()
    for replica in replicas[1:]:
        replica.kill()
    summary = {
        "identifiers": len(writes),
        "created_after_kill": sum(1 for w in writes if w.started >= killed_at),
        "acknowledged": sum(1 for w in writes if w.acknowledged),
        "retried": sum(1 for w in writes if w.connection_lost),
        "failed_attempts_after_kill": sum(1 for t in writers.failed_attempts if t >= killed_at),
        # Every POST attempt over time, the kill marked: what drill --report draws.
        "load": timeline.load(writers.attempts, [(killed_at, "replica killed (SIGKILL)")]),
    }
    return summary, writes, killed_at


def run_crash(
    spec: RolloutSpec,
    *,
    workers: int = 8,
    identifiers: int = 150,
    idempotent: bool = True,
) -> CrashReport:
    """``idempotent=False`` is the negative control: plain creates, one variant."""
    report = CrashReport(conditional=idempotent)
    with cluster(spec) as state:
        probe = state.fleet(1)
        assert state.haproxy is not None
        report.api = FhirClient.for_secret(state.haproxy.url, state.secret_key_base).detect()
        probe[0].kill()
        if not report.api:
            return report
        observe = spec.probe_period * (spec.failure_threshold + 2) + 1.0
        for retry_on in VARIANTS if idempotent else VARIANTS[-1:]:
            summary, writes, _ = run_variant(
                state, retry_on, workers, observe, idempotent, identifiers
            )
            _count(state, writes, summary)
            report.variants[retry_on] = summary
            for key in ("identifiers", "created_after_kill", "acknowledged", "retried"):
                setattr(report, key, getattr(report, key) + summary[key])
            report.duplicates += summary["duplicates"]
            report.lost += summary["lost"]
    return report


def _count(state: Cluster, writes: list[Write], summary: dict[str, Any]) -> None:
    """Search each identifier on a fresh replica: exactly one Patient per acknowledged write."""
    state.fleet(1)
    assert state.haproxy is not None
    client = FhirClient.for_secret(state.haproxy.url, state.secret_key_base)
    duplicates = lost = 0
    for write in writes:
        found = client.count(write.value)
        duplicates += max(0, found - 1)
        lost += 1 if write.acknowledged and found == 0 else 0
    summary["duplicates"], summary["lost"] = duplicates, lost
