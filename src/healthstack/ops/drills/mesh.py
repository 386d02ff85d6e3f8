"""The mesh's retry policy for the service, read from the rendered Istio VirtualService.

In the mesh a replica that refuses a connection (its listener is closed: it has exited, or not yet
started) is not a connect failure for the caller: the caller's sidecar reached the replica's
sidecar, which answers ``503`` ("upstream connect error"). Whether that 503 is retried depends on
the route's ``retryOn``: only ``5xx``, ``gateway-error``, ``retriable-status-codes`` (503 by
Istio's default) or a literal ``503`` retry it; ``connect-failure``, ``refused-stream`` and
``reset-before-request`` do not. The drill's HAProxy retries refused connections exactly when the
route would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
# Istio's retry policy when a route declares none (istio.io: VirtualService HTTPRetry).
ISTIO_DEFAULT_RETRY_ON = (
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
)
RETRIES_A_503 = frozenset({"5xx", "gateway-error", "retriable-status-codes", "503"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 2
    per_try_timeout: float | None = None
    retry_on: str = ISTIO_DEFAULT_RETRY_ON
    source: str = "Istio default (no VirtualService route)"

    @property
    def retries_refused_connection(self) -> bool:
        """Would the caller retry the 503 a replica's sidecar answers for a refused connection?"""
        tokens = {t.strip() for t in self.retry_on.split(",")}
        return self.attempts > 0 and bool(tokens & RETRIES_A_503)


def _seconds(value: Any) -> float | None:
    text = str(value or "").strip()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    return None


def _routes_to(route: Doc, hosts: set[str]) -> bool:
    for destination in route.get("route", []):
        host = str(destination.get("destination", {}).get("host", ""))
        if host.split(".")[0] in hosts:
            return True
    return False


def _is_api(route: Doc) -> bool:
    matches = route.get("match") or []
    return any(str(m.get("uri", {}).get("prefix", "")).startswith("/api") for m in matches)


def retry_policy(docs: list[Doc], pod_labels: dict[str, str]) -> RetryPolicy:
    """The retries of the route to the Service selecting ``pod_labels`` (the API route first)."""
    services = {
        str(d["metadata"]["name"])
        for d in docs
        if d.get("kind") == "Service"
        and (selector := d.get("spec", {}).get("selector"))
        and all(pod_labels.get(k) == v for k, v in selector.items())
    }
    routes = [
        (str(vs["metadata"]["name"]), route)
        for vs in docs
        if vs.get("kind") == "VirtualService"
        for route in vs.get("spec", {}).get("http", [])
        if _routes_to(route, services)
    ]
    routes.sort(key=lambda item: not _is_api(item[1]))
    if not routes:
        return RetryPolicy()
    name, route = routes[0]
    retries = route.get("retries")
    if retries is None:
        return RetryPolicy(source=f"VirtualService {name}: no retries (Istio default)")
    return RetryPolicy(
        attempts=int(retries.get("attempts", 0)),
        per_try_timeout=_seconds(retries.get("perTryTimeout")),
        retry_on=str(retries.get("retryOn", ISTIO_DEFAULT_RETRY_ON)),
        source=f"VirtualService {name}, route {route.get('name', '?')}",
    )
