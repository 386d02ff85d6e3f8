"""SIGTERM under load: readiness fails at once, accepted requests all succeed, exit 0 in time."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
from tests.conftest import Database, start_service

DRAIN_SECONDS = 2.0


def _client_loop(url: str, stop_at: float, results: list[tuple[str, int | str]]) -> None:
    with httpx.Client(timeout=5) as client:  # keep-alive connections, like a proxy's pool
        while time.monotonic() < stop_at:
            try:
                results.append(("ok", client.get(url).status_code))
            except httpx.TransportError as exc:
                results.append(("error", type(exc).__name__))


def test_sigterm_drains_under_load(module_database: Database, tmp_path: Path) -> None:
    service = start_service(
        module_database, tmp_path / "service.log", SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS)
    )
    url = f"{service.base_url}/api/fhir/metadata"
    # Clients stop a little before the drain ends, as the endpoints controller would have by then.
    stop_at = time.monotonic() + 1.0 + DRAIN_SECONDS - 0.3
    results: list[tuple[str, int | str]] = []
    threads = [
        threading.Thread(target=_client_loop, args=(url, stop_at, results)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    sent_at = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    ready = httpx.get(f"{service.base_url}/health/ready")
    for thread in threads:
        thread.join()
    exit_code = service.process.wait(timeout=DRAIN_SECONDS + 10)
    elapsed = time.monotonic() - sent_at

    assert ready.status_code == 503
    assert ready.json()["reason"] == "draining"
    assert len(results) > 100
    failures = [r for r in results if r != ("ok", 200)]
    assert failures == []
    assert exit_code == 0
    assert DRAIN_SECONDS <= elapsed < DRAIN_SECONDS + 5
