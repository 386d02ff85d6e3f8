"""The rendered manifests and the Dockerfile agree with docs/CONTRACT.md (names, port, probes, UID)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tests.deploy.conftest import REPO, Rendered

CONTRACT = (REPO / "docs" / "CONTRACT.md").read_text()


def _row(what: str) -> str:
    match = re.search(rf"^\| {re.escape(what)} \| (.+) \|$", CONTRACT, re.MULTILINE)
    assert match, f"docs/CONTRACT.md has no row {what!r}"
    return match.group(1)


def contract_variables() -> set[str]:
    section = CONTRACT.split("## Environment variables", 1)[1]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def contract_secrets() -> set[str]:
    section = CONTRACT.split("## Environment variables", 1)[1]
    return {m for m in re.findall(r"^\| `([A-Z0-9_]+)` \| secret \|", section, re.MULTILINE)}


PORT = int(re.search(r"default `(\d+)`", _row("listen port")).group(1))  # type: ignore[union-attr]
LIVENESS = re.search(r"`GET (\S+)`", _row("liveness")).group(1)  # type: ignore[union-attr]
READINESS = re.search(r"`GET (\S+)`", _row("readiness")).group(1)  # type: ignore[union-attr]
METRICS = re.search(r"`GET (\S+)`", _row("metrics")).group(1)  # type: ignore[union-attr]
UID = int(re.search(r"UID (\d+)", _row("container user")).group(1))  # type: ignore[union-attr]
COMMAND = re.search(r"`([^`]+)`", _row("image command")).group(1).split()  # type: ignore[union-attr]


def test_contract_parses() -> None:
    assert (PORT, LIVENESS, READINESS, METRICS, UID) == (4000, "/health", "/health/ready",
                                                         "/metrics", 10001)  # fmt: skip
    assert {"DATABASE_URL", "PHX_HOST", "SHUTDOWN_DRAIN_SECONDS"} <= contract_variables()
    assert "ENCRYPTION_KEY" in contract_secrets()


def _app(overlay: Rendered) -> dict[str, Any]:
    return overlay.one("Deployment", "healthcare-app")["spec"]["template"]["spec"]


def _container(overlay: Rendered, name: str) -> dict[str, Any]:
    spec = _app(overlay)
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def test_config_names_are_the_ones_the_service_reads(overlay: Rendered) -> None:
    config = overlay.one("ConfigMap", "healthcare-app-config")["data"]
    assert set(config) <= contract_variables(), set(config) - contract_variables()
    assert {"PHX_HOST", "PORT", "POOL_SIZE", "LOG_LEVEL", "ECTO_IPV6"} <= set(config)
    assert config["PORT"] == str(PORT)
    for name in ("healthcare-app", "migrate"):
        container = _container(overlay, name)
        generated = overlay.one("ConfigMap", "healthcare-app-config")["metadata"]["name"]
        assert container["envFrom"] == [{"configMapRef": {"name": generated}}]
        for var in container["env"]:
            assert var["name"].endswith("_FILE"), f"{var['name']}: secrets are files"
            assert var["name"].removesuffix("_FILE") in contract_secrets(), var["name"]
            assert var["value"].endswith("/" + var["name"].removesuffix("_FILE"))


def test_secret_files_are_mounted_where_the_env_points(overlay: Rendered) -> None:
    spec = _app(overlay)
    volume = next(v for v in spec["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "healthcare-app-secrets"
    volumes = {v["name"]: v for v in spec["volumes"]}
    for container in spec["initContainers"] + spec["containers"]:
        mounts = [m for m in container["volumeMounts"] if "secret" in volumes[m["name"]]]
        for var in container["env"]:
            mount = next(m for m in mounts if var["value"].startswith(m["mountPath"] + "/"))
            key = var["value"].removeprefix(mount["mountPath"] + "/")
            items = volumes[mount["name"]]["secret"].get("items")
            assert items is None or key in {i["path"] for i in items}, (container["name"], key)


def test_only_the_migration_sees_the_schema_owner(overlay: Rendered) -> None:
    spec = _app(overlay)
    volumes = {v["name"]: v for v in spec["volumes"]}
    for container in spec["containers"]:
        for mount in container["volumeMounts"]:
            secret = volumes[mount["name"]].get("secret")
            if secret is not None:  # a whole-Secret mount would carry every key
                assert "MIGRATION_DATABASE_URL" not in {i["key"] for i in secret["items"]}


def test_port_and_probe_paths(overlay: Rendered) -> None:
    app = _container(overlay, "healthcare-app")
    assert app["command"] == COMMAND
    assert app["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    assert app["startupProbe"]["httpGet"]["path"] == LIVENESS
    assert app["livenessProbe"]["httpGet"]["path"] == LIVENESS
    assert app["readinessProbe"]["httpGet"]["path"] == READINESS
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert app[probe]["httpGet"]["port"] in ("http", PORT)
    assert _container(overlay, "migrate")["command"] == ["healthstack", "db", "migrate"]
    service = overlay.one("Service", "healthcare-service")["spec"]["ports"][0]
    assert (service["name"], service["targetPort"]) == ("http", "http")


def test_metrics_scrape_matches(overlay: Rendered) -> None:
    endpoint = overlay.one("ServiceMonitor", "healthcare-app-metrics")["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("http", METRICS)
    pod_endpoint = overlay.one("PodMonitor", "istio-sidecar-metrics")["spec"]
    assert pod_endpoint["podMetricsEndpoints"][0]["port"] == "http-envoy-prom"


def test_user_matches(overlay: Rendered) -> None:
    pod = _app(overlay)["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (UID, UID, UID)


def _dockerfile_final_stage() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    return [line.strip() for line in stages[-1].splitlines() if line.strip()
            and not line.lstrip().startswith("#")]  # fmt: skip


@pytest.mark.parametrize(("instruction", "expected"), [
    ("USER", f"{UID}:{UID}"),
    ("EXPOSE", str(PORT)),
    ("CMD", json.dumps(COMMAND)),
])  # fmt: skip
def test_dockerfile_matches(instruction: str, expected: str) -> None:
    lines = [line for line in _dockerfile_final_stage() if line.startswith(instruction + " ")]
    assert len(lines) == 1, f"Dockerfile final stage: {instruction} x{len(lines)}"
    value = lines[0].split(" ", 1)[1].strip()
    assert (json.dumps(json.loads(value)) if instruction == "CMD" else value) == expected


def test_dockerfile_final_stage_has_no_build_tools() -> None:
    stage = " ".join(_dockerfile_final_stage())
    # One base for both stages, by the digest the build passes (ARG PYTHON_DIGEST).
    assert _dockerfile_final_stage()[0] == "python:3.11-slim@${PYTHON_DIGEST}"
    assert "FROM python:3.11-slim@${PYTHON_DIGEST} AS build" in (REPO / "Dockerfile").read_text()
    assert "HEALTHCHECK" in stage
    assert LIVENESS in stage
    for tool in ("apt-get install", "gcc", "build-essential", "pip install", "COPY src"):
        assert tool not in stage, tool


# The digest part of an image reference (distribution/reference's grammar).
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


def _base_references(build_args: dict[str, str]) -> list[str]:
    """Every FROM's image after global ARG substitution, as a builder would resolve it."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    header = re.split(r"^FROM ", text, flags=re.MULTILINE)[0]
    args = dict(re.findall(r"^ARG (\w+)(?:=(\S*))?$", header, flags=re.MULTILINE))
    args |= build_args
    images = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    return [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], ""), image) for image in images]


def test_base_image_only_by_digest() -> None:
    """Both stages pull python:3.11-slim by digest; without one the reference is invalid, so a
    build can never fall back to the moving tag (issue 14, item 15)."""
    digest = "sha256:" + "0" * 64
    for image in _base_references({"PYTHON_DIGEST": digest}):
        name, _, pinned = image.partition("@")
        assert name == "python:3.11-slim", image
        assert _DIGEST.fullmatch(pinned), image
    for image in _base_references({}):
        assert image.endswith("@"), f"{image}: a build without PYTHON_DIGEST must not resolve"
