"""HS-LIM-001: init containers that need the network run after the mesh proxy is up.

With Istio CNI (which Pod Security ``restricted`` requires: istio-init needs NET_ADMIN and uid 0)
the pod's traffic is redirected to Envoy from the start. A classic sidecar starts only after every
init container has finished, so an init container's connections go to a proxy that is not
running: the migration never reaches PostgreSQL and no pod ever starts. Istio 1.24's per-pod
annotation ``sidecar.istio.io/nativeSidecar: "true"`` injects istio-proxy as a Kubernetes native
sidecar (an init container with ``restartPolicy: Always``) that is started and ready before the
pod's own init containers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.limits import NATIVE_SIDECAR, injected, native_sidecar

# Settings that name a remote endpoint: the container will open a connection with them.
_NETWORK_SETTING = re.compile(r"(URL|URI|HOST|ENDPOINT|ADDR|DSN)(_FILE)?$", re.IGNORECASE)


def _needs_network(c: dict[str, Any]) -> bool:
    names = [str(e.get("name", "")) for e in c.get("env") or [] if isinstance(e, dict)]
    words = [str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
    return any(_NETWORK_SETTING.search(n) for n in names) or any("://" in w for w in words)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        if w.synthetic or not injected(w) or native_sidecar(w):
            continue
        for c in w.pod_spec.get("initContainers") or []:
            if isinstance(c, dict) and c.get("restartPolicy") != "Always" and _needs_network(c):
                yield Violation(
                    w.obj,
                    f"init container {c.get('name')} needs the network but runs before the "
                    f'injected istio-proxy starts (no {NATIVE_SIDECAR}: "true")',
                )


CHECK = Check(
    id="HS-LIM-001",
    title="Network-using init containers start after the mesh proxy",
    severity=Severity.HIGH,
    scope=("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CP-10"),
    remediation=f'Annotate the pod template with {NATIVE_SIDECAR}: "true" (Istio 1.24 native '
    "sidecars) or run the step as a Job that uses native sidecars.",
    evaluate=evaluate,
    family="deployment limits",
)
