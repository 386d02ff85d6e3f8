"""``drill crash``: ``kill -9`` of one replica under load, with and without load-balancer retries.

Each variant gets a fresh HAProxy and fresh replicas on the shared database, steady load, then one
replica killed without warning. Failures are what the client saw until health checks (``fall`` x
``inter``) take the dead replica out. Variants:

* ``none``: no retries: requests in flight on the dead replica and new connections to it fail;
* ``conn-failure``: the mesh's retry on connect-failure: only requests in flight are lost;
* ``conn-failure empty-response``: also retries requests the dead replica never answered. This
  may resend a POST that was already committed, which is safe only because every write is a
  conditional create; the duplicate check below is what makes that claim a measured one.

Idempotency proof: a client retries conditional creates of a fixed set of identifiers (on any
failure, and once more after success, as after a lost response) while the replica dies; load
workers concurrently create the same identifiers; afterwards a search per identifier must find
exactly one Patient.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from healthstack.ops.drills.cluster import Cluster, cluster
from healthstack.ops.drills.fhir import FhirClient, Operation
from healthstack.ops.drills.load import LoadGenerator
from healthstack.ops.drills.spec import RolloutSpec

VARIANTS = ("none", "conn-failure", "conn-failure empty-response")


@dataclass
class CrashReport:
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    identifiers: int = 0
    duplicates: int = 0
    missing: int = 0
    api: bool = True

    @property
    def passed(self) -> bool:
        return self.api and self.duplicates == 0 and self.missing == 0 and self.identifiers > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "drill": "crash",
            "passed": self.passed,
            "api": self.api,
            "variants": self.variants,
            "identifiers": self.identifiers,
            "duplicates": self.duplicates,
            "missing": self.missing,
        }


class RetryingClient:
    """Conditional creates that are retried until acknowledged, then sent once more."""

    def __init__(self, client: FhirClient, values: list[str], attempts: int = 20) -> None:
        self.client, self.values, self.attempts = client, values, attempts
        self.acknowledged: set[str] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _post(self, http: httpx.Client, value: str) -> bool:
        op = self.client.op_create(value)
        try:
            response = http.request(op.method, op.path, headers=op.headers, content=op.body)
        except httpx.HTTPError:
            return False
        return op.check(response) is None

    def _run(self) -> None:
        with httpx.Client(base_url=self.client.base_url, timeout=self.client.timeout) as http:
            for value in self.values:
                for _ in range(self.attempts):
                    if self._post(http, value):
                        self.acknowledged.add(value)
                        self._post(http, value)  # the retry after a lost response
                        break
                    time.sleep(0.05)


def _picker(client: FhirClient, values: list[str]) -> Any:
    def pick(rng: random.Random) -> Operation:
        if rng.random() < 0.3:
            return client.op_create(rng.choice(values))
        return client.op_search(rng.choice(values))

    return pick


def run_variant(
    state: Cluster, retry_on: str, values: list[str], workers: int, observe_s: float
) -> dict[str, Any]:
    replicas = state.fleet(state.spec.replicas, retry_on)
    assert state.haproxy is not None
    client = FhirClient.for_secret(state.haproxy.url, state.secret_key_base)
    load = LoadGenerator(client, _picker(client, values), workers=workers).start()
    load.wait_for(workers * 10)
    retrier = RetryingClient(client, values)
    retrier.thread.start()
    victim = replicas[0]
    victim.kill()  # SIGKILL: no preStop, no drain
    killed_at = time.monotonic()
    time.sleep(observe_s)
    retrier.thread.join(timeout=120)
    result = load.stop()
    for replica in replicas[1:]:
        replica.kill()
    after = [s for s in result.samples if s.started >= killed_at - client.timeout]
    summary = result.summary()
    summary["failed_after_kill"] = sum(1 for s in after if s.failure)
    summary["retrying_client_acknowledged"] = len(retrier.acknowledged)
    return summary


def run_crash(spec: RolloutSpec, *, workers: int = 8, identifiers: int = 40) -> CrashReport:
    report = CrashReport()
    with cluster(spec) as state:
        probe = state.fleet(1)
        assert state.haproxy is not None
        report.api = FhirClient.for_secret(state.haproxy.url, state.secret_key_base).detect()
        probe[0].kill()
        if not report.api:
            return report
        observe = spec.probe_period * (spec.failure_threshold + 2) + 1.0
        for retry_on in VARIANTS:
            values = [
                f"crash+{retry_on.replace(' ', '+')}-{i}-{random.getrandbits(32):x}"
                for i in range(identifiers)
            ]
            report.variants[retry_on] = run_variant(state, retry_on, values, workers, observe)
            _count(state, values, report)
    return report


def _count(state: Cluster, values: list[str], report: CrashReport) -> None:
    """Search each identifier on a fresh replica: exactly one Patient each."""
    state.fleet(1)
    assert state.haproxy is not None
    client = FhirClient.for_secret(state.haproxy.url, state.secret_key_base)
    for value in values:
        found = client.count(value)
        report.identifiers += 1
        report.duplicates += max(0, found - 1)
        report.missing += 1 if found == 0 else 0
