"""Which ASGI server runs the service: uvicorn (our draining runner) vs granian, same app, same load.

Two endpoints of the real application: `/health` (framework + middleware, no I/O) and
`/health/ready` (one pooled database round trip). One worker each: the pod's CPU request is 500m,
so Kubernetes scales by replicas, not by workers inside a pod.
"""

from __future__ import annotations

import sys

from bench.common import free_port, healthstack_command, postgres, save, server, service_env, wrk

CONNECTIONS = 32
SECONDS = 5.0


def granian_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--factory",
        "--no-ws",
        "--log-level",
        "warning",
        "healthstack.asgi:create_app",
    ]


def main() -> dict[str, object]:
    results: dict[str, object] = {}
    with postgres() as pg:
        env = service_env(pg)
        for name, command in (("uvicorn", healthstack_command), ("granian", granian_command)):
            port = free_port()
            with server(command(port), env, port) as base:
                for path in ("/health", "/health/ready"):
                    wrk(base + path, connections=CONNECTIONS, seconds=1)  # warm-up
                    results[f"{name} {path}"] = wrk(
                        base + path, connections=CONNECTIONS, seconds=SECONDS
                    )
    print(f"{'server endpoint':32} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for key, value in results.items():
        print(
            f"{key:32} {value.requests_per_s:10.0f} {value.p50_ms:8.2f} {value.p99_ms:8.2f} "  # type: ignore[attr-defined]
            f"{value.errors:7d}"
        )  # type: ignore[attr-defined]
    for path in ("/health", "/health/ready"):
        ratio = (
            results[f"uvicorn {path}"].requests_per_s / results[f"granian {path}"].requests_per_s
        )  # type: ignore[attr-defined]
        results[f"ratio uvicorn/granian {path}"] = round(ratio, 3)
        print(f"uvicorn/granian {path}: {ratio:.2f}")
    save("server_choice", results)
    return results


if __name__ == "__main__":
    main()
