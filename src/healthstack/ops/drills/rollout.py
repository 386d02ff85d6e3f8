"""``drill rollout``: replace every replica under load, in the Deployment's rolling-update order.

Per step (as the Deployment controller, the endpoints controller and the kubelet do it): start the
new pods (maxSurge + maxUnavailable at a time), wait until their readiness answers and the load
balancer's health checks mark them UP; then each old pod starts terminating and the next step
begins at once (Kubernetes overlaps them the same way). A terminating pod: the preStop sleep,
SIGTERM, up to the rest of the grace period, SIGKILL if still alive; meanwhile it stays in rotation
for ``propagation_seconds`` (endpoints, kube-proxy and Envoy learn of it late), then leaves it.
A refused connection is retried only if the VirtualService's ``retryOn`` would (``mesh.py``).
Target: zero failed requests. Control: no preStop and no drain, which must fail.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from healthstack.ops.drills.cluster import Cluster, Replica, cluster, make_slots
from healthstack.ops.drills.fhir import FhirClient, mixed_picker
from healthstack.ops.drills.haproxy import Slot, mesh_retries
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


def retire(state: Cluster, old: Replica, timing: ReplicaTiming, started: float) -> None:
    """Terminating pod: preStop, SIGTERM and the grace period, while routing catches up late."""
    haproxy = state.haproxy
    assert haproxy is not None
    begun = time.monotonic()
    # Routed to until the change has propagated, whatever its readiness says meanwhile.
    haproxy.keep_in_rotation(old.slot.name)
    leave = threading.Timer(
        state.spec.propagation_seconds, haproxy.set_state, (old.slot.name, "maint")
    )
    leave.start()
    try:
        time.sleep(state.spec.prestop_seconds)
        if state.spec.propagation_seconds <= state.spec.prestop_seconds:
            # The order the deployment sets, whatever the timer thread's jitter on a loaded
            # machine: scaled by 0.05, prod's 5 s margin is 0.25 s, which a late thread can miss.
            leave.join()
        remaining = state.spec.grace_seconds - (time.monotonic() - begun)
        _, timing.killed, timing.exit_code = old.terminate(remaining)
    finally:
        leave.join()
    timing.termination_s = time.monotonic() - begun
    timing.total_s = time.monotonic() - started


def roll(
    state: Cluster, initial: list[Replica], fresh: list[Slot], result: LoadResult
) -> list[ReplicaTiming]:
    """Batches of maxSurge + maxUnavailable; a batch's old pods terminate while the next starts."""
    batch = max(1, state.spec.max_surge + state.spec.max_unavailable)
    timings: list[ReplicaTiming] = []
    with ThreadPoolExecutor(max_workers=len(initial)) as pool:
        retiring: list[Future[None]] = []
        for i in range(0, len(initial), batch):
            started = time.monotonic()
            olds = initial[i : i + batch]
            news = [state.start_replica(s) for s in fresh[i : i + len(olds)]]
            result.mark("surge: " + ", ".join(n.slot.name for n in news))
            for old, new, (ready, up) in zip(olds, news, bring_up(state, news), strict=True):
                result.mark(f"{new.slot.name} ready; {old.slot.name} terminating")
                timing = ReplicaTiming(old.slot.name, new.slot.name, ready, up)
                timings.append(timing)
                retiring.append(pool.submit(retire, state, old, timing, started))
        for future in retiring:
            future.result()
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
        haproxy = state.start_haproxy(slots, *mesh_retries(spec))
        initial = [state.start_replica(s) for s in slots[: spec.replicas]]
        bring_up(state, initial)
        client = FhirClient.for_secret(haproxy.url, state.secret_key_base)
        ids, values = seed_data(client, 20)
        load = LoadGenerator(
            client, mixed_picker(client, ids, values), workers=workers, max_seconds=max_seconds
        ).start()
        load.wait_for(workers * 5)
        window = time.monotonic()
        timings = roll(state, initial, slots[spec.replicas :], load.result)
        load.result.mark("rollout complete")
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
