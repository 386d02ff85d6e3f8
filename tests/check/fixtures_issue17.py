"""Fail/pass fixture pairs for the issue 17 checks (mesh semantics, inferred intent, backup,
exposure); `make_fixtures.py` writes them with the others."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.check import make_fixtures as mf

Doc = dict[str, Any]
Pair = tuple[list[Doc], list[Doc]]


def destination_rule(mode: str, host: str = "web") -> Doc:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": mf.meta(host),
        "spec": {"host": host, "trafficPolicy": {"tls": {"mode": mode}}},
    }


def sidecar(mode: str) -> Doc:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": mf.meta("default"),
        "spec": {"egress": [{"hosts": ["./*"]}], "outboundTrafficPolicy": {"mode": mode}},
    }


def allow_ingress(paths: list[str]) -> Doc:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": mf.meta("web-from-ingress"),
        "spec": {
            "action": "ALLOW",
            "selector": {"matchLabels": {"app": "web"}},
            "rules": [
                {
                    "from": [{"source": {"principals": [INGRESS]}}],
                    "to": [{"operation": {"paths": paths, "ports": ["4000"]}}],
                }
            ],
        },
    }


def deny_admin(path: str) -> Doc:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": mf.meta("deny-admin"),
        "spec": {
            "action": "DENY",
            "selector": {"matchLabels": {"app": "web"}},
            "rules": [{"to": [{"operation": {"paths": [path]}}]}],
        },
    }


def request_authentication() -> Doc:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": mf.meta("web-jwt"),
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "jwtRules": [{"issuer": "https://idp.example", "jwksUri": "https://idp.example/jwks"}],
        },
    }


def require_token() -> Doc:
    """The ingress ALLOW rule, for callers that also carry a valid end-user token."""
    ap = allow_ingress(["/api/*"])
    ap["spec"]["rules"][0]["from"][0]["source"]["requestPrincipals"] = ["*"]
    return ap


def service_entry(hosts: list[str], **spec: Any) -> Doc:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": mf.meta("external-https"),
        "spec": {
            "hosts": hosts,
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
            **spec,
        },
    }


INGRESS = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def tls_monitor() -> Doc:
    monitor = mf.servicemonitor("http")
    monitor["spec"]["endpoints"][0].update(
        {
            "scheme": "https",
            "tlsConfig": {
                "caFile": "/etc/prom-certs/root-cert.pem",
                "certFile": "/etc/prom-certs/cert-chain.pem",
                "keyFile": "/etc/prom-certs/key.pem",
                "insecureSkipVerify": True,
            },
        }
    )
    return monitor


def _mesh() -> list[Doc]:
    return [mf.namespace(), mf.deployment(), mf.service(), *mf.istio_security()]


def _mesh_pairs() -> dict[str, Callable[[], Pair]]:
    no_sidecar = mf.set_path(
        mf.deployment(),
        "spec.template.metadata.annotations",
        {"sidecar.istio.io/inject": "false"},
    )
    return {
        "HS-MS-001": lambda: (
            [*_mesh(), destination_rule("ISTIO_MUTUAL")],
            [*_mesh(), destination_rule("DISABLE")],
        ),
        "HS-MS-002": lambda: (
            [mf.namespace(), mf.deployment(), sidecar("REGISTRY_ONLY")],
            [mf.namespace(), mf.deployment(), sidecar("ALLOW_ANY")],
        ),
        "HS-MS-003": lambda: (_mesh(), [*_mesh()[:1], no_sidecar, *_mesh()[2:]]),
        "HS-MS-004": lambda: (
            [mf.gateway()],
            [mf.set_path(mf.gateway(), "spec.selector", {"istio": "public-gateway"})],
        ),
        "HS-MS-005": lambda: (
            [*_mesh(), tls_monitor()],
            [*_mesh(), mf.servicemonitor("http")],
        ),
        "HS-MS-006": lambda: (
            [*_mesh(), mf.gateway(), mf.virtualservice(), allow_ingress(["/api/*"])],
            [*_mesh(), mf.gateway(), mf.virtualservice(), allow_ingress(["/fhir/*"])],
        ),
        "HS-MS-008": lambda: (
            [*_mesh(), request_authentication(), require_token()],
            [*_mesh(), request_authentication(), allow_ingress(["/api/*"])],
        ),
        "HS-MS-009": lambda: (
            [mf.namespace(), mf.deployment()],
            [
                mf.namespace(),
                mf.set_path(
                    mf.deployment(),
                    "spec.template.metadata.annotations",
                    {"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"},
                ),
            ],
        ),
        "HS-MS-010": lambda: ([deny_admin("/admin*")], [deny_admin("/admin")]),
        "HS-MS-007": lambda: (
            [mf.namespace(), mf.deployment(), service_entry(["api.example.com"])],
            [mf.namespace(), mf.deployment(), service_entry(["api.example.com", "*.example.com"])],
        ),
    }


def prometheus_rule(budget: str) -> Doc:
    alert = {
        "alert": "AvailabilityBurnRate1h",
        "expr": f"errors:ratio_rate1h > (14.4 * {budget})\nand\nerrors:ratio_rate5m > (14.4 * {budget})",
        "labels": {"severity": "page", "slo": "availability-99.95"},
    }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": mf.meta("slo"),
        "spec": {"groups": [{"name": "slo", "rules": [alert]}]},
    }


def database(**spec: Any) -> Doc:
    doc = mf.postgres()
    doc["spec"]["volumeClaimTemplates"] = [
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    ]
    doc["spec"].update(spec)
    return doc


def headless() -> Doc:
    svc = mf.service()
    svc["metadata"] = mf.meta("postgres")
    svc["spec"] = {
        "clusterIP": "None",
        "selector": {"app": "postgres"},
        "ports": [{"name": "tcp-postgres", "port": 5432, "targetPort": "postgresql"}],
    }
    return svc


def service_account(name: str) -> Doc:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": mf.meta(name)}


def psa_namespace(level: str) -> Doc:
    ns = mf.namespace()  # restricted already; the fail fixture lowers it
    ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = level
    return ns


def _workload_pairs() -> dict[str, Callable[[], Pair]]:
    cap = f"{mf.C0}.securityContext.capabilities"
    return {
        "HS-PS-001": lambda: mf.workload_pair(cap, {"drop": ["ALL"], "add": ["NET_ADMIN"]}),
        "HS-PS-002": lambda: (
            [psa_namespace("restricted"), mf.deployment()],
            [psa_namespace("baseline"), mf.deployment()],
        ),
        "HS-EX-001": lambda: (
            [mf.namespace(), mf.deployment(), mf.service()],
            [mf.namespace(), mf.deployment(), mf.set_path(mf.service(), "spec.type", "NodePort")],
        ),
        "HS-RI-001": lambda: (
            [database(), headless()],
            [database(serviceName="postgresql"), headless()],
        ),
        "HS-RI-002": lambda: mf.workload_pair(
            f"{mf.POD}.topologySpreadConstraints.0.labelSelector.matchLabels.app", "webapp"
        ),
        "HS-RI-003": lambda: (
            [mf.deployment(), allow_ingress(["/api/*"])],
            [
                mf.deployment(),
                mf.set_path(allow_ingress(["/api/*"]), "spec.selector.matchLabels.app", "webapp"),
            ],
        ),
        "HS-RI-004": lambda: (
            [
                service_account("web"),
                mf.set_path(mf.deployment(), f"{mf.POD}.serviceAccountName", "web"),
            ],
            [
                service_account("web"),
                mf.set_path(mf.deployment(), f"{mf.POD}.serviceAccountName", "webb"),
            ],
        ),
        "HS-HA-001": lambda: (
            [mf.deployment(), mf.service()],
            [mf.set_path(mf.deployment(), f"{mf.C0}.lifecycle", None), mf.service()],
        ),
        "HS-SLO-001": lambda: ([prometheus_rule("0.0005")], [prometheus_rule("0.005")]),
    }


def cnpg_cluster() -> Doc:
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": mf.meta("postgres"),
        "spec": {
            "instances": 3,
            "storage": {"size": "10Gi"},
            "backup": {
                "retentionPolicy": "30d",
                "barmanObjectStore": {"destinationPath": "s3://backups/demo"},
            },
        },
    }


def scheduled_backup(schedule: str = "0 0 1 * * *") -> Doc:
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": mf.meta("postgres-daily"),
        "spec": {"schedule": schedule, "cluster": {"name": "postgres"}},
    }


def _backup_pairs() -> dict[str, Callable[[], Pair]]:
    return {
        "HS-BK-004": lambda: (
            [mf.namespace(), cnpg_cluster(), scheduled_backup()],
            [mf.namespace(), cnpg_cluster()],
        ),
        "HS-BK-001": lambda: ([mf.velero()], [mf.velero(ttl="24h")]),
        "HS-BK-002": lambda: (
            [mf.namespace(), database(), mf.velero(snapshotVolumes=True)],
            [mf.namespace(), database(), mf.velero(snapshotVolumes=False)],
        ),
        "HS-BK-003": lambda: (
            [mf.namespace(), database()],
            [
                mf.namespace(),
                database(
                    persistentVolumeClaimRetentionPolicy={
                        "whenDeleted": "Delete",
                        "whenScaled": "Retain",
                    }
                ),
            ],
        ),
    }


def internet_egress(excepted: list[str]) -> Doc:
    rule = {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": excepted}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    return mf.set_path(mf.policies()[1], "spec.egress.2", rule)


PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]


def pairs() -> dict[str, Callable[[], Pair]]:
    return {
        **_mesh_pairs(),
        **_workload_pairs(),
        **_backup_pairs(),
        "HS-NP-002": lambda: ([internet_egress(PRIVATE)], [internet_egress(["10.0.0.0/8"])]),
    }


def clean_stack_additions() -> list[Doc]:
    """What the CLI's clean stack needs so the issue 17 checks accept it."""
    return [allow_ingress(["/api/*"])]
