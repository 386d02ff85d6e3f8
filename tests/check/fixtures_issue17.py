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
        "HS-MS-007": lambda: (
            [*_mesh(), mf.gateway(), mf.virtualservice(), allow_ingress(["/api/*"])],
            [*_mesh(), mf.gateway(), mf.virtualservice(), allow_ingress(["/fhir/*"])],
        ),
    }


def pairs() -> dict[str, Callable[[], Pair]]:
    return {**_mesh_pairs()}


def clean_stack_additions() -> list[Doc]:
    """What the CLI's clean stack needs so the issue 17 checks accept it."""
    return [allow_ingress(["/api/*"])]
