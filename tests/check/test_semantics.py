"""Issue 17: the checker follows the API's semantics exactly and raises no false alarms."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from healthstack.check.engine import make_context, run_checks
from healthstack.check.inventory import Inventory
from healthstack.check.loader import parse_stream
from healthstack.check.reachability import Network, Port
from healthstack.check.registry import by_id

NS = """
apiVersion: v1
kind: Namespace
metadata: {name: app, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: x
          ports: [{name: http, containerPort: 4000}]
"""


def objects(extra: str) -> list:  # type: ignore[type-arg]
    return parse_stream(NS + "---\n" + textwrap.dedent(extra), "t.yaml")


def findings(extra: str, check_id: str) -> list[str]:
    ctx = make_context(objects(extra))
    return [f"{f.object_ref}: {f.message}" for f in run_checks(ctx, checks=[by_id()[check_id]])]


EMPTY_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: app}
spec: {podSelector: {}, ingress: [], egress: []}
"""


def test_empty_egress_without_policy_types_leaves_egress_open() -> None:
    net = Network(Inventory(objects(EMPTY_EGRESS)))
    web = net.by_key("app/web")
    assert web is not None
    assert net.verdict(web, net.internet, Port(443)).allowed
    assert not net.verdict(net.probes[0], web, Port(4000, "TCP", "http")).allowed


def test_empty_egress_is_not_a_default_deny() -> None:
    assert any("for Egress" in m for m in findings(EMPTY_EGRESS, "HS-ZT-001"))
    with_rule = EMPTY_EGRESS.replace("egress: []", "egress: [{to: [{podSelector: {}}]}]")
    net = Network(Inventory(objects(with_rule)))
    web = net.by_key("app/web")
    assert web is not None
    assert not net.verdict(web, net.internet, Port(443)).allowed


def test_denial_is_anchored_on_the_pod_policy_not_the_default_deny() -> None:
    policies = """
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: a-default-deny, namespace: app}
    spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: web, namespace: app}
    spec:
      podSelector: {matchLabels: {app: web}}
      policyTypes: [Egress]
      egress: [{ports: [{port: 53, protocol: UDP}]}]
    """
    found = findings(policies, "HS-ZT-004")
    assert found
    assert all(f.startswith("NetworkPolicy/app/web:") for f in found), found


CLUSTER_EXTERNAL = """
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {name: shared}
spec:
  namespaceSelectors: [{matchLabels: {kubernetes.io/metadata.name: app}}]
  externalSecretSpec:
    secretStoreRef: {name: vault, kind: ClusterSecretStore}
    target: {name: web-secrets}
    data: [{secretKey: TOKEN, remoteRef: {key: web/token}}]
"""


def _with_secret_ref(key: str, annotations: str = "{}") -> str:
    volume = f"[{{name: s, secret: {{secretName: web-secrets, items: [{{key: {key}, path: k}}]}}}}]"
    return NS.replace(
        "    metadata: {labels: {app: web}}\n    spec:\n",
        f"    metadata: {{labels: {{app: web}}, annotations: {annotations}}}\n"
        f"    spec:\n      volumes: {volume}\n",
    )


def test_cluster_external_secret_produces_the_secret() -> None:
    stream = _with_secret_ref("TOKEN") + "---\n" + textwrap.dedent(CLUSTER_EXTERNAL)
    check = by_id()["HS-CO-008"]
    assert run_checks(make_context(parse_stream(stream, "t.yaml")), checks=[check]) == []
    wrong = stream.replace("secretKey: TOKEN", "secretKey: OTHER")
    messages = [
        f.message for f in run_checks(make_context(parse_stream(wrong, "t")), checks=[check])
    ]
    assert messages == ["Secret web-secrets has no key 'TOKEN'"]


def test_external_annotation_on_the_pod_template_in_either_form() -> None:
    check = by_id()["HS-CO-008"]
    for value in ('"Secret/web-secrets: TOKEN; ConfigMap/x"', '"ConfigMap/x, Secret/web-secrets"'):
        annotations = "{healthstack.io/external-keys: " + value + "}"
        stream = _with_secret_ref("TOKEN", annotations)
        assert run_checks(make_context(parse_stream(stream, "t")), checks=[check]) == [], value
    missing = run_checks(make_context(parse_stream(_with_secret_ref("TOKEN"), "t")), checks=[check])
    assert "not declared external" in missing[0].message


DATABASE = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: app}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations: {pre.hook.backup.velero.io/command: '["/bin/sh", "-c", "pg_dump"]'}
    spec:
      containers: [{name: db, image: x, ports: [{name: postgresql, containerPort: 5432}]}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: db, namespace: app}
spec: {minAvailable: 1, selector: {matchLabels: {app: db}}}
"""


def test_single_instance_database_may_block_eviction() -> None:
    messages = findings(DATABASE, "HS-AV-001")
    assert not any("db" in m.split(":")[0] and "allows no disruption" in m for m in messages)
    assert not any("StatefulSet/app/db" in m for m in messages), messages
    without_pdb = DATABASE.split("---")[0]
    assert any(
        m.startswith("StatefulSet/app/db: no PodDisruptionBudget")
        for m in findings(without_pdb, "HS-AV-001")
    )


def test_velero_hook_as_pod_annotation_counts() -> None:
    schedule = """
    ---
    apiVersion: velero.io/v1
    kind: Schedule
    metadata: {name: daily, namespace: velero}
    spec: {schedule: "0 2 * * *", template: {includedNamespaces: [app], ttl: 720h}}
    """
    assert findings(DATABASE + textwrap.dedent(schedule), "HS-DH-003") == []
    unhooked = DATABASE.replace("pre.hook.backup.velero.io/command", "x")
    assert findings(unhooked + textwrap.dedent(schedule), "HS-DH-003")


def test_database_kept_outside_the_mesh_by_design_is_not_reported() -> None:
    opted_out = DATABASE.replace(
        "annotations: {", 'annotations: {sidecar.istio.io/inject: "false", '
    )
    service = """
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: db, namespace: app}
    spec: {selector: {app: db}, ports: [{port: 5432}]}
    ---
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: default, namespace: app}
    spec: {mtls: {mode: STRICT}}
    """
    rule = """
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: db, namespace: app}
    spec: {host: db, trafficPolicy: {tls: {mode: DISABLE}}}
    """
    stack = opted_out + textwrap.dedent(service)
    assert any("StatefulSet/app/db" in m for m in findings(stack, "HS-MS-003"))
    assert findings(stack + textwrap.dedent(rule), "HS-MS-003") == []


def test_secrets_made_by_cert_manager_sealed_secrets_and_cnpg_exist() -> None:
    check = by_id()["HS-CO-008"]
    producers = {
        "tls.crt": """
        apiVersion: cert-manager.io/v1
        kind: Certificate
        metadata: {name: web, namespace: app}
        spec: {secretName: web-secrets, dnsNames: [web.example.com]}
        """,
        "TOKEN": """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata: {name: web-secrets, namespace: app}
        spec: {encryptedData: {TOKEN: AgB}}
        """,
    }
    for key, producer in producers.items():
        stream = _with_secret_ref(key) + "---\n" + textwrap.dedent(producer)
        assert run_checks(make_context(parse_stream(stream, "t")), checks=[check]) == [], key
    cnpg = """
    apiVersion: postgresql.cnpg.io/v1
    kind: Cluster
    metadata: {name: pg, namespace: app}
    spec: {instances: 1}
    """
    stream = _with_secret_ref("uri").replace("web-secrets", "pg-app") + "---\n"
    stream += textwrap.dedent(cnpg)
    assert run_checks(make_context(parse_stream(stream, "t")), checks=[check]) == []


def test_slo_budget_must_match_every_stated_slo() -> None:
    rule = """
    apiVersion: monitoring.coreos.com/v1
    kind: PrometheusRule
    metadata: {name: slo, namespace: app}
    spec:
      groups:
        - name: slo
          rules:
            - alert: Burn1h
              expr: errors:ratio_rate1h > (14.4 * 0.005)
              labels: {slo: availability-99.95}
              annotations: {summary: "Availability SLO 99.5%: burning 14.4x"}
    """
    assert findings(rule, "HS-SLO-001") == [
        "PrometheusRule/app/slo: alert Burn1h: threshold uses error budget 0.005 (SLO 99.5%) "
        "but declares SLO 99.95% (budget 0.0005)"
    ]
    consistent = rule.replace("availability-99.95", "availability-99.5")
    assert findings(consistent, "HS-SLO-001") == []


def test_load_balancer_in_front_of_the_stacks_own_gateway_is_the_way_in() -> None:
    gateway = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: app}
    spec: {selector: {istio: app-gateway}, servers: []}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: gw, namespace: app}
    spec: {type: LoadBalancer, selector: {istio: app-gateway, app: gw}, ports: [{port: 443}]}
    """
    assert findings(gateway, "HS-EX-001") == []
    other = gateway.replace("istio: app-gateway, app: gw", "app: web")
    assert findings(other, "HS-EX-001") == [
        "Service/app/gw: type LoadBalancer exposes app pods directly, bypassing the gateway"
    ]


def test_gateway_in_istio_ingress_counts_when_the_network_routes_from_there() -> None:
    from .conftest import FIXTURES

    fixture = (FIXTURES / "HS-MS-006/pass/objects.yaml").read_text("utf-8")
    moved = fixture.replace(
        "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
        "cluster.local/ns/istio-ingress/sa/istio-ingress",
    )
    policies = """
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: web, namespace: demo}
    spec:
      podSelector: {matchLabels: {app: web}}
      policyTypes: [Ingress]
      ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: X}}}]}]
    """
    check = [by_id()["HS-MS-006"]]

    def run(stream: str) -> list[str]:
        return [
            f.message for f in run_checks(make_context(parse_stream(stream, "t")), checks=check)
        ]

    assert run(moved + textwrap.dedent(policies).replace("X", "istio-ingress")) == []
    # The NetworkPolicy admits the istio-system gateway, so that is the one the policy must admit.
    assert run(moved + textwrap.dedent(policies).replace("X", "istio-system"))
    assert run(fixture) == []


def test_a_field_of_the_wrong_type_is_reported_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from healthstack.cli import main

    from .conftest import REPO

    clean = (REPO / "tests/check/cli/clean.yaml").read_text("utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(clean.replace("  endpoints:\n", "  endpoints: x\n  unused:\n"), "utf-8")
    code = main(["check", str(bad)])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    assert "HS-CO-004  could not be evaluated: an object has a field of the wrong type" in (
        captured.out
    )
    assert "flow(s) inferred" in captured.err  # the other flows are still inferred
