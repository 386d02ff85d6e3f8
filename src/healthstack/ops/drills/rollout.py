"""``drill rollout``: replace every replica under load, in the Deployment's rolling-update order.

Per step (as the Deployment controller, the endpoints controller and the kubelet do it): start the
new pods (maxSurge + maxUnavailable at a time), wait until their readiness answers and the load
balancer's health checks mark them UP; then, for each old pod, in parallel: out of rotation (the
endpoints controller, in parallel with preStop), the preStop sleep, SIGTERM, up to the rest of the
grace period, SIGKILL if still alive. Target: zero failed requests.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from healthstack.ops.drills.cluster import Cluster, Replica, cluster, make_slots
from healthstack.ops.drills.fhir import FhirClient, mixed_picker
from healthstack.ops.drills.haproxy import Slot
from healthstack.ops.drills.load import LoadGenerator, LoadResult
from healthstack.ops.drills.spec import RolloutSpec


@dataclass
class ReplicaTiming:
    old: str
    new: str
    new_ready_s: float = 0.0  # process start -> readiness 200
    lb_up_s: float = 0.0  # readiness 200 -> HAProxy marks it UP
    termination_s: float = 0.0  # out of rotation -> process exited (preStop + drain)
    killed: bool = False
    exit_code: int = 0
    total_s: float = 0.0


@dataclass
class RolloutReport:
    spec: RolloutSpec
    api: bool
    load: dict[str, Any]
    replicas: list[ReplicaTiming] = field(default_factory=list)
    duration_s: float = 0.0
    min_requests: int = 0

    @property
    def passed(self) -> bool:
        clean = all(not r.killed and r.exit_code == 0 for r in self.replicas)
        return self.load["failed"] == 0 and self.load["requests"] >= self.min_requests and clean

    def to_dict(self) -> dict[str, Any]:
        return {
            "drill": "rollout",
            "passed": self.passed,
            "api": self.api,
            "spec": asdict(self.spec),
            "load": self.load,
            "duration_s": round(self.duration_s, 2),
            "replicas": [asdict(r) for r in self.replicas],
        }


def seed_data(client: FhirClient, count: int) -> tuple[list[str], list[str]]:
    """Patients for reads and searches to find (none when the API is absent)."""
    if not client.detect():
        return [], []
    values = [f"seed-{i}-{time.monotonic_ns():x}" for i in range(count)]
    return [client.create(v) for v in values], values


def bring_up(state: Cluster, news: list[Replica]) -> list[tuple[float, float]]:
    """Wait for each new replica to be ready, then for HAProxy to route to it."""
    assert state.haproxy is not None
    timings = []
    for replica in news:
        ready = replica.wait_ready()
        state.haproxy.set_state(replica.slot.name, "ready")
        checks = state.spec.probe_period * (state.spec.success_threshold + 2) + 5
        timings.append((ready, state.haproxy.wait_status(replica.slot.name, "UP", checks)))
    return timings


def retire(state: Cluster, old: Replica, timing: ReplicaTiming) -> None:
    """Terminating pod: out of rotation and preStop together, then SIGTERM and the grace period."""
    assert state.haproxy is not None
    started = time.monotonic()
    state.haproxy.set_state(old.slot.name, "maint")
    time.sleep(state.spec.prestop_seconds)
    remaining = state.spec.grace_seconds - (time.monotonic() - started)
    _, timing.killed, timing.exit_code = old.terminate(remaining)
    timing.termination_s = time.monotonic() - started


def replace_batch(state: Cluster, olds: list[Replica], news: list[Replica]) -> list[ReplicaTiming]:
    started = time.monotonic()
    timings = [ReplicaTiming(o.slot.name, n.slot.name) for o, n in zip(olds, news, strict=True)]
    for timing, (ready, up) in zip(timings, bring_up(state, news), strict=True):
        timing.new_ready_s, timing.lb_up_s = ready, up
    with ThreadPoolExecutor(max_workers=len(olds)) as pool:
        list(pool.map(lambda pair: retire(state, *pair), zip(olds, timings, strict=True)))
    for timing in timings:
        timing.total_s = time.monotonic() - started
    return timings


def roll(state: Cluster, initial: list[Replica], fresh: list[Slot]) -> list[ReplicaTiming]:
    batch = max(1, state.spec.max_surge + state.spec.max_unavailable)
    timings: list[ReplicaTiming] = []
    for i in range(0, len(initial), batch):
        olds = initial[i : i + batch]
        news = [state.start_replica(s) for s in fresh[i : i + len(olds)]]
        timings += replace_batch(state, olds, news)
    return timings


def run_rollout(
    spec: RolloutSpec,
    *,
    workers: int = 8,
    min_requests: int = 0,
    settle_s: float = 1.0,
    max_seconds: float = 900.0,
) -> RolloutReport:
    started = time.monotonic()
    with cluster(spec) as state:
        slots = make_slots(spec.replicas * 2)
        haproxy = state.start_haproxy(slots)
        initial = [state.start_replica(s) for s in slots[: spec.replicas]]
        bring_up(state, initial)
        client = FhirClient.for_secret(haproxy.url, state.secret_key_base)
        ids, values = seed_data(client, 20)
        load = LoadGenerator(
            client, mixed_picker(client, ids, values), workers=workers, max_seconds=max_seconds
        ).start()
        load.wait_for(workers * 5)
        window = time.monotonic()
        timings = roll(state, initial, slots[spec.replicas :])
        window_end = time.monotonic()
        result = _finish(load, settle_s, min_requests, max_seconds)
    summary = result.summary()
    # The requests that were at risk: started while replicas were being replaced.
    during = [s for s in result.samples if window <= s.started <= window_end]
    summary["during_rollout"] = len(during)
    summary["failed_during_rollout"] = sum(1 for s in during if s.failure)
    return RolloutReport(
        spec, client.api, summary, timings, time.monotonic() - started, min_requests
    )


def _finish(
    load: LoadGenerator, settle_s: float, min_requests: int, max_seconds: float
) -> LoadResult:
    """Keep the load on the new replicas a little longer (and until ``min_requests``)."""
    time.sleep(settle_s)
    deadline = time.monotonic() + max_seconds
    while load.result.total < min_requests and time.monotonic() < deadline:
        time.sleep(0.1)
    return load.stop()
