"""A real HAProxy standing in for the Service's endpoints and the mesh in front of the replicas.

Health checks mirror the readiness probe (``GET /health/ready``; ``inter`` = periodSeconds,
``fall`` = failureThreshold, ``rise`` = successThreshold). Server slots are declared up front,
``disabled`` until a pod starts in them; the runtime API (admin socket) then models the endpoints
controller: ``state ready`` when a pod exists, ``state maint`` when it is Terminating.

``mesh_retries`` gives the rollout the route's own behaviour (``mesh.py``): refused connections
are retried, ``attempts`` times, only when the VirtualService's ``retryOn`` retries the 503 a
sidecar answers for them; ``timeout server`` is the route's ``perTryTimeout``.

Retries elsewhere (the mesh's analogue): ``retries 3`` + ``option redispatch`` + ``retry-on`` limited to
``conn-failure`` by default: a connection that was refused or never established carried no request,
so retrying it elsewhere is safe for every method. ``empty-response`` (the server closed without
answering) may follow a request that *was* processed, so it is only enabled where the drill says so
(the crash drill's comparison), never to make the rollout drill pass.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from healthstack.errors import HealthstackError
from healthstack.ops.drills.spec import RolloutSpec

BACKEND = "app"


@dataclass(frozen=True)
class Slot:
    name: str
    port: int


def _ms(seconds: float) -> int:
    return max(50, round(seconds * 1000))


def render_config(
    spec: RolloutSpec,
    frontend_port: int,
    slots: list[Slot],
    socket_path: Path,
    retry_on: str = "conn-failure",
    retries: int = 3,
) -> str:
    check = (
        f"check inter {_ms(spec.probe_period)} fall {spec.failure_threshold} "
        f"rise {spec.success_threshold}"
    )
    servers = "\n".join(f"    server {s.name} 127.0.0.1:{s.port} {check} disabled" for s in slots)
    retry_lines = (
        f"    retries {retries}\n    option redispatch 1\n    retry-on {retry_on}\n"
        if retry_on != "none" and retries > 0
        else "    retries 0\n"
    )
    return f"""global
    stats socket {socket_path} mode 600 level admin
    maxconn 4096

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server {_ms(spec.retry.per_try_timeout or 60)}
    timeout check {_ms(spec.probe_timeout)}
    # A fresh server-side connection per request: uvicorn closes idle keep-alive connections on
    # its own timer, and a request racing that close would be an artefact of this proxy pairing,
    # not of the service (in the cluster the app talks to its own sidecar).
    option http-server-close

frontend fe
    bind 127.0.0.1:{frontend_port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
{retry_lines}{servers}
"""


class HAProxy:
    def __init__(
        self,
        workdir: Path,
        spec: RolloutSpec,
        frontend_port: int,
        slots: list[Slot],
        retry_on: str = "conn-failure",
        retries: int = 3,
    ) -> None:
        self.workdir = workdir
        self.socket_path = workdir / "haproxy.sock"
        self.config_path = workdir / "haproxy.cfg"
        self.frontend_port = frontend_port
        self.config_path.write_text(
            render_config(spec, frontend_port, slots, self.socket_path, retry_on, retries)
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.frontend_port}"

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise HealthstackError("haproxy not found: run `make sysdeps` (Debian package haproxy)")
        check = subprocess.run(
            [binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise HealthstackError(f"{self.config_path}: invalid: {check.stderr.strip()}")
        with (self.workdir / "haproxy.log").open("wb") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_socket()

    def _wait_socket(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                self.command("show info")
                return
            time.sleep(0.02)
        raise HealthstackError(f"haproxy did not open {self.socket_path}")

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def set_state(self, server: str, state: str) -> None:
        """``ready`` (pod in endpoints), ``maint`` (out of rotation) or ``drain``."""
        answer = self.command(f"set server {BACKEND}/{server} state {state}").strip()
        if answer:
            raise HealthstackError(f"haproxy: set server {server} state {state}: {answer}")

    def keep_in_rotation(self, server: str) -> None:
        """Stop health-checking ``server``: it stays routed until ``set_state`` says otherwise."""
        self.command(f"disable health {BACKEND}/{server}")

    def statuses(self) -> dict[str, str]:
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        return {
            r["svname"]: r["status"]
            for r in rows
            if r["pxname"] == BACKEND and r["svname"] not in ("BACKEND", "FRONTEND")
        }

    def wait_status(self, server: str, want: str, timeout: float) -> float:
        """Seconds until HAProxy reports ``server`` as ``want`` (e.g. ``UP``)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.statuses().get(server, "").startswith(want):
                return time.monotonic() - started
            time.sleep(0.02)
        raise HealthstackError(
            f"haproxy: {server} not {want} after {timeout:.1f}s (now {self.statuses().get(server)})"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def mesh_retries(spec: RolloutSpec) -> tuple[str, int]:
    """HAProxy's ``retry-on`` and ``retries`` for a refused connection, as the mesh route has it."""
    if spec.retry.retries_refused_connection:
        return "conn-failure", spec.retry.attempts
    return "none", 0
