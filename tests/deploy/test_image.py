"""The image's program, as the cluster runs it, without a container engine.

The built wheel goes into a fresh venv; the Dockerfile's exact CMD (and the migration
initContainer's command before it) runs as UID/GID 10001 with the environment the rendered
Deployment gives the container: the Dockerfile's ENV, the ConfigMap's values and the Secret's
keys as files under the mount path. Then the probe paths and port named in the rendered Deployment
must answer. The working directory is not writable by that user, standing in for the read-only
root filesystem.

Dependencies come from the dev venv (a ``.pth`` file appended after the fresh venv's own
site-packages) so the test stays fast; the package itself is imported from the wheel only, which
is asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import create_database
from tests.deploy.conftest import REPO, Rendered

from healthstack.ops import secrets
from healthstack.service.embedded_pg import EmbeddedPostgres, free_port

UID = 10001


def _final_stage() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stage = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]
    return [line.strip() for line in stage.splitlines() if line.strip()]


def dockerfile_cmd() -> list[str]:
    (line,) = [line for line in _final_stage() if line.startswith("CMD ")]
    command = json.loads(line.removeprefix("CMD "))
    assert isinstance(command, list)
    return [str(part) for part in command]


def dockerfile_env(venv_bin: Path) -> dict[str, str]:
    """ENV KEY=VALUE pairs of the final stage, with the image's venv path mapped to ours."""
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    for line in _final_stage():
        if line.startswith("ENV "):
            for key, value in re.findall(r"(\w+)=(\S+)", line):
                value = value.replace("$PATH", env["PATH"]).replace("/opt/healthstack/bin",
                                                                   str(venv_bin))  # fmt: skip
                env[key] = value
    return env


@pytest.fixture(scope="module")
def image_root() -> Iterator[Path]:
    # Not pytest's tmp_path: that is mode 0700 under root's directory, unreadable for UID 10001.
    root = Path(tempfile.mkdtemp(prefix="healthstack-image-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def venv(image_root: Path) -> Path:
    """A fresh venv holding the wheel built from this checkout."""
    wheels = image_root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
          str(wheels), str(REPO)])  # fmt: skip
    (wheel,) = wheels.glob("healthstack-*.whl")
    target = image_root / "venv"
    _run([str(_interpreter()), "-m", "venv", "--without-pip", str(target)])
    python = target / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
          str(wheel)])  # fmt: skip
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]))
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o444)
    return target


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _interpreter() -> Path:
    """A Python 3.11 that UID 10001 may execute (pyenv under a 0700 /root is not one)."""
    candidates = [Path(sys._base_executable).resolve(), Path("/usr/bin/python3.11"),
                  Path("/usr/local/bin/python3.11")]  # fmt: skip
    for candidate in candidates:
        if candidate.is_file() and (os.geteuid() != 0 or _reachable_by_others(candidate)):
            return candidate
    pytest.skip(f"no Python 3.11 executable by UID {UID} among {candidates}")


def _run(args: list[str], **kwargs: Any) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, (
        f"{' '.join(args[:4])}...: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    )
    return proc.stdout.strip()


def _container(overlay: Rendered, name: str) -> dict[str, Any]:
    spec = overlay.one("Deployment", "healthcare-app")["spec"]["template"]["spec"]
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 (the service binds all addresses too)
        except OSError:
            return False
    return True


def write_secret_files(folder: Path, values: dict[str, str]) -> None:
    """Like a Secret volume with defaultMode 0440 and fsGroup 10001: root-owned, group-readable."""
    folder.mkdir(mode=0o755)
    for key, value in values.items():
        file = folder / key
        file.write_text(value)
        file.chmod(0o440)
        if os.geteuid() == 0:
            os.chown(file, 0, UID)


def container_env(container: dict[str, Any], config: dict[str, str], base: dict[str, str],
                  secret_dir: Path, mount: str) -> dict[str, str]:  # fmt: skip
    env = dict(base)
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"].startswith("healthcare-app-config-")  # hashed
        env.update(config)
    for var in container.get("env", []):
        env[var["name"]] = var["value"].replace(mount, str(secret_dir))
    return env


def _identity() -> dict[str, Any]:
    return {"user": UID, "group": UID, "extra_groups": []} if os.geteuid() == 0 else {}


@pytest.fixture(params=["prod", "staging"])
def pod(request: pytest.FixtureRequest, rendered: dict[str, Rendered], venv: Path,
        image_root: Path, pg: EmbeddedPostgres) -> dict[str, Any]:  # fmt: skip
    """Everything one rendered environment gives the container, made real on this machine."""
    overlay = rendered[request.param]
    app = _container(overlay, "healthcare-app")
    mount = next(m for m in app["volumeMounts"] if m["name"] == "secrets")["mountPath"]
    db = create_database(pg, migrated=False)
    values = secrets.generate(secrets.environment(overlay.env))
    values |= {"DATABASE_URL": db.url, "MIGRATION_DATABASE_URL": db.owner_url}
    secret_dir = image_root / f"secrets-{overlay.env}"
    write_secret_files(secret_dir, values)
    config = dict(overlay.one("ConfigMap", "healthcare-app-config")["data"])
    port = app["ports"][0]["containerPort"]
    if not _port_free(port):  # another process on this machine holds it; the pod would not
        config["PORT"] = str(port := free_port())
    base = dockerfile_env(venv / "bin")
    cwd = image_root / f"root-{overlay.env}"
    cwd.mkdir(mode=0o755)  # owned by root: not writable for UID 10001 (read-only root stand-in)
    return {
        "overlay": overlay, "app": app, "port": port, "cwd": cwd,
        "app_env": container_env(app, config, base, secret_dir, mount),
        "migrate": _container(overlay, "migrate"),
        "migrate_env": container_env(_container(overlay, "migrate"), config, base, secret_dir,
                                     mount),
    }  # fmt: skip


def _wait(url: str, process: subprocess.Popen[str], timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, _ = process.communicate()
            pytest.fail(f"`healthstack serve` exited with {process.returncode}:\n{out[-3000:]}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not ready within {timeout}s")


def test_wheel_is_what_runs(venv: Path) -> None:
    location = _run([str(venv / "bin" / "python"), "-c",
                     "import healthstack; print(healthstack.__file__)"])  # fmt: skip
    assert location.startswith(str(venv)), location
    assert (venv / "bin" / dockerfile_cmd()[0]).is_file()


def test_image_command_serves_probes_as_rendered(pod: dict[str, Any]) -> None:
    migrate = subprocess.run(pod["migrate"]["command"], env=pod["migrate_env"], cwd=pod["cwd"],
                             capture_output=True, text=True, timeout=120, check=False,
                             **_identity())  # fmt: skip
    assert migrate.returncode == 0, f"initContainer migrate: {migrate.stdout}{migrate.stderr}"
    assert pod["app"]["command"] == dockerfile_cmd()
    process = subprocess.Popen(dockerfile_cmd(), env=pod["app_env"], cwd=pod["cwd"], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               **_identity())  # fmt: skip
    try:
        base = f"http://127.0.0.1:{pod['port']}"
        app = pod["app"]
        _wait(base + app["startupProbe"]["httpGet"]["path"], process)
        if os.geteuid() == 0:
            status = Path(f"/proc/{process.pid}/status").read_text()
            assert re.search(rf"^Uid:\s+{UID}\s", status, re.MULTILINE), "not running as 10001"
        for probe in ("livenessProbe", "readinessProbe"):
            assert httpx.get(base + app[probe]["httpGet"]["path"], timeout=5).status_code == 200
        monitor = pod["overlay"].one("ServiceMonitor", "healthcare-app-metrics")
        metrics = httpx.get(base + monitor["spec"]["endpoints"][0]["path"], timeout=5)
        assert "http_requests_total" in metrics.text
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-3000:]
    assert "Traceback" not in output
