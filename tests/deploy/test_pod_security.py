"""Every rendered pod would be admitted by Pod Security ``restricted``, as written and as Istio
injects it; and the injected pod starts its network-using init containers after the proxy.

No cluster runs here, so this is the strongest offline stand-in for "the pods come up" (issue
14, item 1): the namespace enforces ``restricted`` (tests/deploy/test_render.py), the standard's
controls are applied to each pod template (tests/deploy/pod_security.py), and the sidecar
injection of Istio 1.24 is reproduced with the security contexts and volumes its injection
template gives (istio-validation with CNI, istio-init without it, istio-proxy). Pods that
operators build (CloudNativePG's instances and Pooler) are not rendered here and not judged.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.deploy import pod_security
from tests.deploy.conftest import Rendered

NATIVE = "sidecar.istio.io/nativeSidecar"
_NON_ROOT_1337 = {"allowPrivilegeEscalation": False, "privileged": False,
                  "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
                  "runAsGroup": 1337, "runAsUser": 1337, "runAsNonRoot": True}  # fmt: skip
# Without Istio CNI the injector adds istio-init, which programs iptables itself.
_ISTIO_INIT = {"allowPrivilegeEscalation": False, "privileged": False,
               "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
               "readOnlyRootFilesystem": False, "runAsGroup": 0, "runAsUser": 0,
               "runAsNonRoot": False}  # fmt: skip
_ISTIO_VOLUMES = [
    {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
    {"name": "istio-data", "emptyDir": {}},
    {"name": "istio-podinfo", "downwardAPI": {"items": []}},
    {"name": "istio-token", "projected": {"sources": []}},
    {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
]


def pod_templates(overlay: Rendered) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template) of every workload the overlay renders."""
    found = []
    for doc in overlay.docs:
        spec = doc.get("spec") or {}
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
            found.append((f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]))
        elif doc["kind"] == "Pod":
            found.append((f"Pod/{doc['metadata']['name']}", doc))
    return found


def _injected_namespace(overlay: Rendered) -> bool:
    (namespace,) = overlay.find("Namespace")
    labels = namespace["metadata"].get("labels", {})
    return labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels


def inject(template: dict[str, Any], *, cni: bool) -> dict[str, Any]:
    """The pod spec Istio 1.24's injector makes of a template (CNI or istio-init; native or
    classic sidecar as the template's annotation asks)."""
    annotations = template.get("metadata", {}).get("annotations", {})
    spec = copy.deepcopy(template["spec"])
    setup = {"name": "istio-validation" if cni else "istio-init",
             "securityContext": copy.deepcopy(_NON_ROOT_1337 if cni else _ISTIO_INIT)}  # fmt: skip
    proxy: dict[str, Any] = {
        "name": "istio-proxy",
        "securityContext": copy.deepcopy(_NON_ROOT_1337),
    }
    own_init = spec.get("initContainers") or []
    if annotations.get(NATIVE) == "true":
        # A Kubernetes native sidecar: started, and ready, before the pod's own init containers.
        spec["initContainers"] = [setup, proxy | {"restartPolicy": "Always"}, *own_init]
    else:
        spec["initContainers"] = [setup, *own_init]
        spec["containers"] = [*spec["containers"], proxy]
    spec["volumes"] = [*(spec.get("volumes") or []), *copy.deepcopy(_ISTIO_VOLUMES)]
    return spec


def _is_injected(overlay: Rendered, template: dict[str, Any]) -> bool:
    annotations = template.get("metadata", {}).get("annotations", {})
    labels = template.get("metadata", {}).get("labels", {})
    opted_out = "false" in (annotations.get("sidecar.istio.io/inject"),
                            labels.get("sidecar.istio.io/inject"))  # fmt: skip
    return _injected_namespace(overlay) and not opted_out


def test_rendered_pods_are_admitted_as_written(overlay: Rendered) -> None:
    templates = pod_templates(overlay)
    assert {name for name, _ in templates} >= {"Deployment/healthcare-app", "CronJob/audit-anchor"}
    for name, template in templates:
        assert pod_security.violations(template["spec"]) == [], name


def test_injected_pods_are_admitted_with_istio_cni(overlay: Rendered) -> None:
    injected = [(n, t) for n, t in pod_templates(overlay) if _is_injected(overlay, t)]
    assert injected, "no rendered pod is injected: the mesh would not cover the service"
    for name, template in injected:
        assert pod_security.violations(inject(template, cni=True)) == [], name


def test_injection_without_cni_is_refused(rendered: dict[str, Rendered]) -> None:
    """The negative control: istio-init (Istio's default without CNI) breaks ``restricted``,
    which is why docs/deploy.md installs Istio with CNI."""
    template = rendered["prod"].one("Deployment", "healthcare-app")["spec"]["template"]
    found = pod_security.violations(inject(template, cni=False))
    assert "istio-init: capabilities: adds NET_ADMIN" in found
    assert "istio-init: running as non-root user: runAsUser 0" in found


def _reaches_the_network(container: dict[str, Any]) -> bool:
    env = [str(e.get("name", "")) for e in container.get("env") or []]
    return any(name.endswith(("DATABASE_URL", "DATABASE_URL_FILE")) for name in env)


def network_init_before_proxy(spec: dict[str, Any]) -> list[str]:
    """Init containers that open connections while no proxy runs (CNI redirects them to it)."""
    late: list[str] = []
    proxy_up = False
    for c in spec.get("initContainers") or []:
        proxy_up = proxy_up or (c["name"] == "istio-proxy" and c.get("restartPolicy") == "Always")
        if _reaches_the_network(c) and not proxy_up:
            late.append(c["name"])
    return late


def test_migrations_start_after_the_proxy(overlay: Rendered) -> None:
    """With CNI every connection of the pod goes through Envoy from the first init container on:
    the migration reaches PostgreSQL only because the proxy is a native sidecar started first."""
    template = overlay.one("Deployment", "healthcare-app")["spec"]["template"]
    assert any(_reaches_the_network(c) for c in template["spec"]["initContainers"])
    for name, template in pod_templates(overlay):
        if _is_injected(overlay, template):
            assert network_init_before_proxy(inject(template, cni=True)) == [], name


@pytest.mark.parametrize("env", ["prod", "staging"])
def test_classic_sidecar_would_strand_the_migration(
    env: str, rendered: dict[str, Rendered]
) -> None:
    """The negative control: Istio 1.24's default (classic sidecar) leaves ``migrate`` without a
    proxy, so the check above is not vacuous."""
    template = copy.deepcopy(rendered[env].one("Deployment", "healthcare-app")["spec"]["template"])
    del template["metadata"]["annotations"][NATIVE]
    assert network_init_before_proxy(inject(template, cni=True)) == ["migrate"]


def _app_spec(rendered: dict[str, Rendered]) -> dict[str, Any]:
    spec = rendered["prod"].one("Deployment", "healthcare-app")["spec"]["template"]["spec"]
    return copy.deepcopy(spec)


_BREAKS = {
    "host namespaces": lambda s: s.update(hostNetwork=True),
    "volume types": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
    "privilege escalation": lambda s: s["containers"][0]["securityContext"].pop(
        "allowPrivilegeEscalation"),
    "capabilities": lambda s: s["initContainers"][0]["securityContext"]["capabilities"].update(
        add=["SYS_ADMIN"]),
    "running as non-root user": lambda s: s["containers"][0]["securityContext"].update(
        runAsUser=0),
    "seccomp": lambda s: s["securityContext"].update(seccompProfile={"type": "Unconfined"}),
    "host ports": lambda s: s["containers"][0]["ports"][0].update(hostPort=4000),
}  # fmt: skip


@pytest.mark.parametrize("control", sorted(_BREAKS))
def test_each_control_is_enforced(control: str, rendered: dict[str, Rendered]) -> None:
    """The evaluator is not vacuous: breaking one control of the rendered pod is reported."""
    spec = _app_spec(rendered)
    _BREAKS[control](spec)
    assert any(control in v for v in pod_security.violations(spec)), control
