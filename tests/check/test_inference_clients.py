"""Issue 17: inference finds a database's clients in the configuration they actually read
(configMapKeyRef values and mounted ConfigMaps too) and across namespaces when the host names
the database's namespace, so a correct cross-namespace stack raises no false alarm."""

from __future__ import annotations

from healthstack.check.engine import make_context, run_checks
from healthstack.check.inference import infer_intent
from healthstack.check.inventory import Inventory
from healthstack.check.loader import parse_stream
from healthstack.check.registry import by_id

STACK = """
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg, namespace: app}}
data: {{db-host: "{host}", settings.toml: 'database = "{host}"'}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: app}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: x, {reads}}}]
      volumes: [{volume}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: postgres, namespace: data}}
spec:
  selector: {{matchLabels: {{app: postgres}}}}
  template:
    metadata: {{labels: {{app: postgres}}}}
    spec:
      containers: [{{name: pg, image: postgres, ports: [{{name: pg, containerPort: 5432}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: postgres, namespace: data}}
spec: {{selector: {{app: postgres}}, ports: [{{port: 5432, targetPort: pg}}]}}
"""
KEY_REF = "env: [{name: DB, valueFrom: {configMapKeyRef: {name: cfg, key: db-host}}}]"
MOUNTED = "{name: config, configMap: {name: cfg}}"


def flows(host: str, reads: str = "", volume: str = "") -> set[tuple[str, str, bool]]:
    objects = parse_stream(STACK.format(host=host, reads=reads, volume=volume), "s.yaml")
    intent = infer_intent(Inventory(objects))
    return {(f.src, f.dst, f.allowed) for f in intent.flows if f.dst == "data/postgres"}


def test_cross_namespace_client_read_through_a_config_map_key() -> None:
    assert ("app/web", "data/postgres", True) in flows("postgres.data.svc", reads=KEY_REF)


def test_cross_namespace_client_read_through_a_mounted_config_map() -> None:
    assert ("app/web", "data/postgres", True) in flows("postgres.data", volume=MOUNTED)


def test_a_bare_host_from_another_namespace_names_no_client() -> None:
    # "postgres" alone resolves in the client's own namespace, not in data.
    assert ("app/web", "data/postgres", True) not in flows("postgres", reads=KEY_REF)
    assert ("*", "data/postgres", False) in flows("postgres", reads=KEY_REF)


ADMIT_WEB = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: postgres, namespace: data}
spec:
  podSelector: {matchLabels: {app: postgres}}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: app}}
          podSelector: {matchLabels: {app: web}}
      ports: [{port: 5432}]
"""


def test_database_isolation_accepts_the_inferred_cross_namespace_client() -> None:
    yaml = STACK.format(host="postgres.data.svc", reads=KEY_REF, volume="") + ADMIT_WEB
    ctx = make_context(parse_stream(yaml, "s.yaml"))
    checks = [by_id()["HS-DH-004"], by_id()["HS-NP-001"]]
    assert [f.message for f in run_checks(ctx, checks=checks)] == []
    # The same policy admitting a pod whose configuration names no database is an intrusion.
    stray = STACK.format(host="elsewhere", reads=KEY_REF, volume="") + ADMIT_WEB
    found = run_checks(make_context(parse_stream(stray, "s.yaml")), checks=checks[:1])
    assert [f.check_id for f in found] == ["HS-DH-004"]
