"""Shared bench plumbing: a private PostgreSQL, service processes, and wrk runs parsed into numbers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from healthstack.ops.processes import serve_command
from healthstack.service import migrate
from healthstack.service.embedded_pg import APP_ROLE, SUPERUSER, EmbeddedPostgres, free_port

RESULTS = Path(__file__).with_name("results")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        errors=errors + (int(non2xx.group(1)) if non2xx else 0),
    )


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    script: Path | None = None,
    headers: Sequence[str] = (),
    script_args: Sequence[str] = (),
    timeout_s: int = 30,
) -> WrkResult:
    # wrk's default 2 s timeout turns slow requests (100-entry Bundles) into "errors" without
    # latencies; a long timeout keeps them in the percentiles.
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s}s",
        "--latency",
    ]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(script)]
    # Arguments after "--" reach the Lua script's init(args), e.g. a file of request paths.
    tail = ["--", *script_args] if script_args else []
    output = subprocess.run(
        [*command, url, *tail], capture_output=True, text=True, check=True
    ).stdout
    return parse_wrk(output)


@contextmanager
def postgres() -> Iterator[EmbeddedPostgres]:
    workdir = Path(tempfile.mkdtemp(prefix="hs-bench-"))
    server = EmbeddedPostgres(workdir / "pg")
    try:
        server.init()
        server.start()
        server.ensure_database()
        migrate.upgrade(server.url(SUPERUSER))
        yield server
    finally:
        server.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def service_env(pg: EmbeddedPostgres, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.update(
        HEALTHSTACK_ENV="test",
        DATABASE_URL=pg.url(APP_ROLE),
        LOG_LEVEL="warning",
        SECRET_KEY_BASE="b" * 64,
        ENCRYPTION_KEY="cd" * 32,
        BACKUP_KEY="ef" * 32,
    )
    env.update(extra)
    return env


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)  # also after a 503 (starting): do not hammer a process that is booting
    raise RuntimeError("server not ready")


@dataclass
class Running:
    base_url: str
    process: subprocess.Popen[bytes]
    ready_seconds: float  # from spawning the process to the first 200 from /health/ready


@contextmanager
def launch(command: Sequence[str], env: dict[str, str], port: int) -> Iterator[Running]:
    """A server process, ready; its pid is what memory figures are read from."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process)
        yield Running(base_url, process, time.monotonic() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def server(command: Sequence[str], env: dict[str, str], port: int) -> Iterator[str]:
    with launch(command, env, port) as running:
        yield running.base_url


def healthstack_command(port: int) -> list[str]:
    return serve_command(port)


def save(name: str, payload: object) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {k: asdict(v) if isinstance(v, WrkResult) else v for k, v in dict(payload).items()}  # type: ignore[call-overload]
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


__all__ = [
    "free_port",
    "healthstack_command",
    "launch",
    "postgres",
    "save",
    "server",
    "service_env",
    "wrk",
]
