"""Regenerate tests/check/fixtures/<CHECK-ID>/{pass,fail}/*.yaml (run by hand, output committed).

Each pair starts from one small, correct stack and changes the one thing the check is about, so
a fixture shows exactly what passes and what fails: `.venv/bin/python -m tests.check.make_fixtures`.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent / "fixtures"
DIGEST = "registry.example/web@sha256:" + "a" * 64
NS = "demo"
Doc = dict[str, Any]


def meta(name: str, **extra: Any) -> Doc:
    return {"name": name, "namespace": NS, **extra}


def namespace() -> Doc:
    labels = {"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": labels}}


def container() -> Doc:
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    return {
        "name": "web",
        "image": DIGEST,
        "ports": [{"name": "http", "containerPort": 4000, "protocol": "TCP"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "startupProbe": probe,
        "livenessProbe": probe,
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}},
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "volumeMounts": [{"name": "secrets", "mountPath": "/run/secrets/app", "readOnly": True}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DATABASE_URL_FILE", "value": "/run/secrets/app/DATABASE_URL"},
        ],
    }


def deployment(name: str = "web", app: str = "web") -> Doc:
    spread = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": app}},
    }
    c = container()
    c["name"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name),
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [spread],
                    "containers": [c],
                    "volumes": [{"name": "secrets", "secret": {"secretName": "web-secrets"}}],
                },
            },
        },
    }


def hpa(target: str = "web") -> Doc:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(f"{target}-hpa"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 2,
            "maxReplicas": 4,
        },
    }


def pdb(app: str = "web", **spec: Any) -> Doc:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(app),
        "spec": {"selector": {"matchLabels": {"app": app}}, **(spec or {"maxUnavailable": 1})},
    }


def service(target: Any = "http") -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("web", labels={"app": "web"}),
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": target}],
        },
    }


def secret_volume_target() -> Doc:
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": meta("web-secrets"),
        "spec": {
            "secretStoreRef": {"name": "vault", "kind": "SecretStore"},
            "target": {"name": "web-secrets"},
            "data": [{"secretKey": "DATABASE_URL", "remoteRef": {"key": "web/database-url"}}],
        },
    }


def netpol(name: str, selector: Doc, types: list[str], **rules: Any) -> Doc:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name),
        "spec": {"podSelector": selector, "policyTypes": types, **rules},
    }


def by_name(ns: str) -> Doc:
    return {"matchLabels": {"kubernetes.io/metadata.name": ns}}


def dns_rule() -> Doc:
    return {
        "to": [
            {
                "namespaceSelector": by_name("kube-system"),
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def istiod_rule() -> Doc:
    return {
        "to": [
            {
                "namespaceSelector": by_name("istio-system"),
                "podSelector": {"matchLabels": {"app": "istiod"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 15012}],
    }


def policies() -> list[Doc]:
    web = {"matchLabels": {"app": "web"}}
    ingress = [
        {
            "from": [
                {
                    "namespaceSelector": by_name("istio-system"),
                    "podSelector": {"matchLabels": {"istio": "ingressgateway"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": "http"}],
        },
        {
            "from": [{"namespaceSelector": by_name("monitoring")}],
            "ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "TCP", "port": 15090}],
        },
    ]
    return [
        netpol("default-deny", {}, ["Ingress", "Egress"]),
        netpol(
            "web", web, ["Ingress", "Egress"], ingress=ingress, egress=[dns_rule(), istiod_rule()]
        ),
    ]


def gateway(**server: Any) -> Doc:
    default = {
        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        "tls": {"mode": "SIMPLE", "credentialName": "web-tls"},
        "hosts": ["web.example.com"],
    }
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": meta("gw"),
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [server or default]},
    }


def virtualservice(**http: Any) -> Doc:
    route = {
        "name": "api",
        "match": [{"uri": {"prefix": "/api/"}}],
        "route": [{"destination": {"host": "web", "port": {"number": 80}}}],
        "timeout": "30s",
        "retries": {
            "attempts": 2,
            "perTryTimeout": "10s",
            "retryOn": "connect-failure,refused-stream",
        },
    }
    route.update(http)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta("web"),
        "spec": {"hosts": ["web.example.com"], "gateways": ["gw"], "http": [route]},
    }


def set_path(doc: Doc, path: str, value: Any) -> Doc:
    """Copy of doc with a dotted path set (integers index lists); value None deletes."""
    doc = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return doc


POD = "spec.template.spec"
C0 = f"{POD}.containers.0"
Pair = tuple[list[Doc], list[Doc]]


def workload_pair(path: str, bad: Any) -> Pair:
    return [deployment()], [set_path(deployment(), path, bad)]


def postgres(labels: Doc | None = None) -> Doc:
    doc = deployment("postgres", "postgres")
    doc["kind"] = "StatefulSet"
    doc["spec"].pop("strategy")
    doc["spec"]["serviceName"] = "postgres"
    doc["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"name": "postgresql", "containerPort": 5432, "protocol": "TCP"}
    ]
    return doc


def db_policy() -> Doc:
    return netpol(
        "postgres",
        {"matchLabels": {"app": "postgres"}},
        ["Ingress", "Egress"],
        ingress=[
            {
                "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                "ports": [{"protocol": "TCP", "port": 5432}],
            }
        ],
        egress=[dns_rule()],
    )


def velero(**template: Any) -> Doc:
    base = {
        "includedNamespaces": [NS],
        "ttl": "720h0m0s",
        "hooks": {
            "resources": [
                {
                    "name": "dump",
                    "includedNamespaces": [NS],
                    "pre": [{"exec": {"command": ["pg_dump"]}}],
                }
            ]
        },
    }
    base.update(template)
    return {
        "apiVersion": "velero.io/v1",
        "kind": "Schedule",
        "metadata": {"name": "daily", "namespace": "velero"},
        "spec": {"schedule": "0 2 * * *", "template": base},
    }


def istio_security() -> list[Doc]:
    return [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": meta("default"),
            "spec": {"mtls": {"mode": "STRICT"}},
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": meta("allow-nothing"),
            "spec": {},
        },
    ]


def _pairs() -> dict[str, Callable[[], Pair]]:
    stack = [namespace(), deployment(), *policies()]
    return {
        "HS-SC-001": lambda: ([deployment()], [set_path(deployment(), f"{C0}.imagePolicy", "x")]),
        "HS-WL-001": lambda: workload_pair(f"{C0}.securityContext.readOnlyRootFilesystem", False),
        "HS-WL-002": lambda: workload_pair(f"{C0}.resources.limits", None),
        "HS-WL-003": lambda: workload_pair(f"{C0}.readinessProbe.httpGet.path", "/health"),
        "HS-WL-004": lambda: workload_pair(f"{C0}.image", "registry.example/web:1.0"),
        "HS-WL-005": lambda: workload_pair(
            f"{C0}.env.1",
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "web-secrets", "key": "DATABASE_URL"}},
            },
        ),
        "HS-WL-006": lambda: workload_pair(f"{POD}.automountServiceAccountToken", None),
        "HS-WL-007": lambda: workload_pair(f"{POD}.hostNetwork", True),
        "HS-AV-001": lambda: (
            [deployment(), hpa(), pdb()],
            [deployment(), hpa(), pdb(minAvailable=2)],
        ),
        "HS-AV-002": lambda: (
            [deployment(), hpa()],
            [set_path(deployment(), f"{POD}.topologySpreadConstraints", None), hpa()],
        ),
        "HS-AV-003": lambda: workload_pair("spec.strategy.rollingUpdate.maxUnavailable", "25%"),
        "HS-AV-004": lambda: (
            [deployment(), hpa()],
            [set_path(deployment(), "spec.replicas", 3), hpa()],
        ),
        "HS-AV-005": lambda: workload_pair(f"{C0}.startupProbe", None),
        "HS-AV-006": lambda: (
            [deployment(), service(), virtualservice()],
            [
                set_path(
                    set_path(deployment(), f"{POD}.terminationGracePeriodSeconds", 30),
                    f"{C0}.lifecycle",
                    {"preStop": {"sleep": {"seconds": 10}}},
                ),
                service(),
                virtualservice(),
            ],
        ),
        "HS-CO-001": lambda: ([deployment(), service()], [deployment(), service(8080)]),
        "HS-CO-002": lambda: workload_pair(f"{C0}.livenessProbe.httpGet.port", 9000),
        "HS-CO-003": lambda: ([deployment(), hpa()], [deployment(), hpa("webapp")]),
        "HS-CO-004": lambda: (
            [namespace(), deployment(), service(), *policies(), servicemonitor("http")],
            [namespace(), deployment(), service(), *policies(), servicemonitor("metrics")],
        ),
        "HS-CO-005": lambda: (
            [service(), gateway(), virtualservice()],
            [service(), gateway(), set_path(virtualservice(), "spec.hosts.0", "api.example.com")],
        ),
        "HS-CO-006": lambda: (
            [virtualservice()],
            [
                virtualservice(
                    retries={"attempts": 3, "perTryTimeout": "10s", "retryOn": "connect-failure"}
                )
            ],
        ),
        "HS-CO-007": lambda: (
            [virtualservice()],
            [
                virtualservice(
                    retries={"attempts": 2, "perTryTimeout": "10s", "retryOn": "5xx,reset"}
                )
            ],
        ),
        "HS-CO-008": lambda: ([deployment(), secret_volume_target()], [deployment()]),
        "HS-ZT-001": lambda: (stack, [namespace(), deployment(), policies()[1]]),
        "HS-ZT-002": lambda: (
            [namespace(), deployment(), policies()[1]],
            [
                namespace(),
                deployment(),
                set_path(policies()[1], "spec.podSelector.matchLabels.app", "other"),
            ],
        ),
        "HS-ZT-003": lambda: (
            [namespace(), *policies()],
            [
                namespace(),
                set_path(
                    policies()[1],
                    "spec.ingress.1.from.0.namespaceSelector",
                    {"matchLabels": {"name": "monitoring"}},
                ),
            ],
        ),
        "HS-ZT-004": lambda: (
            stack,
            [
                namespace(),
                deployment(),
                policies()[0],
                set_path(policies()[1], "spec.egress.0.ports.1", None),
            ],
        ),
        "HS-ZT-005": lambda: (
            [
                set_path(
                    policies()[1],
                    "spec.egress.2",
                    {
                        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                        "ports": [{"protocol": "TCP", "port": 443}],
                    },
                )
            ],
            [
                set_path(
                    policies()[1],
                    "spec.egress.2",
                    {
                        "to": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "TCP", "port": 443}],
                    },
                )
            ],
        ),
        "HS-ZT-006": lambda: (
            [namespace(), deployment(), *istio_security()],
            [
                namespace(),
                deployment(),
                istio_security()[1],
                set_path(istio_security()[0], "spec.mtls.mode", "PERMISSIVE"),
            ],
        ),
        "HS-ZT-007": lambda: (
            [namespace(), deployment(), *istio_security()],
            [namespace(), deployment(), istio_security()[0]],
        ),
        "HS-ZT-008": lambda: (
            [gateway()],
            [
                gateway(
                    port={"number": 80, "name": "http", "protocol": "HTTP"},
                    hosts=["web.example.com"],
                )
            ],
        ),
        "HS-NP-001": lambda: (
            stack,
            [
                namespace(),
                deployment(),
                policies()[0],
                set_path(policies()[1], "spec.ingress.0.from.0", {"namespaceSelector": {}}),
            ],
        ),
        "HS-DH-001": lambda: (
            [configmap("LOG_LEVEL", "info")],
            [configmap("DATABASE_URL", "postgresql://app:hunter2@db:5432/x")],
        ),
        "HS-DH-002": lambda: (
            [{"apiVersion": "v1", "kind": "Secret", "metadata": meta("s"), "type": "Opaque"}],
            [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": meta("s"),
                    "type": "Opaque",
                    "stringData": {"API_TOKEN": "not-a-real-one"},
                }
            ],
        ),
        "HS-DH-003": lambda: ([deployment(), velero()], [deployment(), velero(ttl=None)]),
        "HS-DH-004": lambda: ([postgres(), db_policy()], [postgres()]),
        "HS-SUP-001": lambda: (
            [
                set_path(
                    deployment(),
                    "metadata.annotations",
                    {"healthstack.io/suppress.HS-WL-004": "image built and pinned by CI"},
                )
            ],
            [
                set_path(
                    deployment(), "metadata.annotations", {"healthstack.io/suppress.HS-WL-004": ""}
                )
            ],
        ),
    }


def servicemonitor(port: str) -> Doc:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta("web"),
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "endpoints": [{"port": port, "path": "/metrics"}],
        },
    }


def configmap(key: str, value: str) -> Doc:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("web"), "data": {key: value}}


INTENT = {
    "allow": [
        {"from": "ingressgateway", "to": f"{NS}/web", "ports": ["4000/TCP"]},
        {"from": f"{NS}/web", "to": "dns", "ports": ["53/UDP", "53/TCP"]},
    ],
    "deny": [{"from": "any", "to": f"{NS}/web", "ports": [4000]}],
}


def _clean(doc: Any) -> Any:
    """Drop keys set to None by set_path-style edits (e.g. velero(ttl=None))."""
    if isinstance(doc, dict):
        return {k: _clean(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_clean(v) for v in doc]
    return doc


def clean_stack() -> list[Doc]:
    """A small stack every check accepts (the CLI tests start from it)."""
    from tests.check import fixtures_issue17

    return [
        namespace(),
        deployment(),
        hpa(),
        pdb(),
        service(),
        secret_volume_target(),
        *policies(),
        gateway(),
        virtualservice(),
        *istio_security(),
        velero(),
        fixtures_issue17.tls_monitor(),
        *fixtures_issue17.clean_stack_additions(),
    ]


def write_cli_stacks() -> None:
    folder = Path(__file__).parent / "cli"
    folder.mkdir(exist_ok=True)
    stack = clean_stack()
    for doc in stack:  # issue 14: a Secret change rolls the pods (HS-LIM-004)
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["metadata"]
            pod["annotations"] = {"checksum/web-secrets": "sha256 of the Secret, set by CD"}
        if doc["kind"] == "Schedule":  # HS-LIM-005: Secrets stay with the secret manager
            doc["spec"]["template"]["excludedResources"] = ["secrets"]
    stack += [  # HS-LIM-007: a quota that fits the peak, and container defaults
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("compute"),
         "spec": {"hard": {"requests.cpu": "4", "requests.memory": "8Gi"}}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("defaults"),
         "spec": {"limits": [{"type": "Container",
                              "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}},
    ]  # fmt: skip
    (folder / "clean.yaml").write_text(yaml.safe_dump_all(stack, sort_keys=False), "utf-8")
    tagged = [
        set_path(d, f"{C0}.image", "registry.example/web:1.0") if d["kind"] == "Deployment" else d
        for d in stack
    ]
    (folder / "tagged.yaml").write_text(yaml.safe_dump_all(tagged, sort_keys=False), "utf-8")


def main() -> None:
    from tests.check import fixtures_issue17

    write_cli_stacks()
    shutil.rmtree(ROOT, ignore_errors=True)
    for check_id, make in {**_pairs(), **fixtures_issue17.pairs()}.items():
        for verdict, docs in zip(("pass", "fail"), make(), strict=True):
            folder = ROOT / check_id / verdict
            folder.mkdir(parents=True)
            text = yaml.safe_dump_all([_clean(d) for d in docs], sort_keys=False)
            (folder / "objects.yaml").write_text(text, encoding="utf-8")
            if check_id == "HS-NP-001":
                (folder / "intent.yaml").write_text(
                    yaml.safe_dump(INTENT, sort_keys=False), encoding="utf-8"
                )


if __name__ == "__main__":
    main()
