"""Issue 17: the checker follows the API's semantics exactly and raises no false alarms."""

from __future__ import annotations

import textwrap

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
