"""Issue 17, reference integrity beyond the registry fixtures: a StatefulSet's governing Service
is headless, routed subsets exist, and Istio selectors and subsets select pods."""

from __future__ import annotations

from .test_mesh_semantics import STRICT_WEB
from .test_semantics import findings

STATEFUL = """
apiVersion: v1
kind: Service
metadata: {{name: pg, namespace: app}}
spec: {{{headless}selector: {{app: pg}}, ports: [{{port: 5432}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: pg, namespace: app}}
spec:
  serviceName: pg
  selector: {{matchLabels: {{app: pg}}}}
  template:
    metadata: {{labels: {{app: pg}}}}
    spec: {{containers: [{{name: pg, image: postgres, ports: [{{containerPort: 5432}}]}}]}}
"""


def test_statefulset_governing_service_must_be_headless() -> None:
    [found] = findings(STATEFUL.format(headless=""), "HS-RI-001")
    assert "names a Service that is not headless" in found
    assert findings(STATEFUL.format(headless='clusterIP: "None", '), "HS-RI-001") == []


ROUTE = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: app}}
spec:
  hosts: [web]
  http: [{{route: [{{destination: {{host: web, subset: {subset}}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web, namespace: app}}
spec: {{host: web.app.svc.cluster.local, subsets: [{{name: stable, labels: {labels}}}]}}
"""


def test_route_to_a_subset_no_destination_rule_defines_is_reported() -> None:
    routed = STRICT_WEB + ROUTE.format(subset="canary", labels="{app: web}")
    [found] = findings(routed, "HS-CO-005")
    assert "subset 'canary' is defined by no DestinationRule for Service/app/web" in found
    assert (
        findings(STRICT_WEB + ROUTE.format(subset="stable", labels="{app: web}"), "HS-CO-005") == []
    )


def test_subset_whose_labels_select_no_pod_of_the_service_is_reported() -> None:
    [found] = findings(
        STRICT_WEB + ROUTE.format(subset="stable", labels="{version: v2}"), "HS-RI-003"
    )
    assert found.startswith("DestinationRule/app/web: subset 'stable'")
    assert (
        findings(STRICT_WEB + ROUTE.format(subset="stable", labels="{app: web}"), "HS-RI-003") == []
    )


POLICY = """
apiVersion: {api}
kind: {kind}
metadata: {{name: p, namespace: {ns}}}
spec: {{{field}: {{{key}: {{app: {app}}}}}, {rest}}}
"""


def policy(kind: str, app: str, ns: str = "app") -> str:
    api, field, key, rest = {
        "AuthorizationPolicy": (
            "security.istio.io/v1",
            "selector",
            "matchLabels",
            'action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]',
        ),
        "Sidecar": (
            "networking.istio.io/v1",
            "workloadSelector",
            "labels",
            "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
        ),
    }[kind]
    return POLICY.format(api=api, kind=kind, ns=ns, field=field, key=key, app=app, rest=rest)


def test_deny_policy_or_sidecar_selecting_no_pod_is_reported() -> None:
    [deny] = findings(policy("AuthorizationPolicy", "webb"), "HS-RI-003")
    assert "AuthorizationPolicy DENY selector {'app': 'webb'} matches no pod in app" in deny
    [sidecar] = findings(policy("Sidecar", "webb"), "HS-RI-003")
    assert "Sidecar workloadSelector {'app': 'webb'} matches no pod" in sidecar


def test_selectors_that_select_pods_or_namespaces_outside_the_set_pass() -> None:
    assert findings(policy("AuthorizationPolicy", "web"), "HS-RI-003") == []
    assert findings(policy("Sidecar", "web"), "HS-RI-003") == []
    # Gateways come from Istio's charts, outside the manifests: not judged.
    assert findings(policy("AuthorizationPolicy", "istio-ingressgateway"), "HS-RI-003") == []
    assert (
        findings(policy("AuthorizationPolicy", "ingressgateway", "istio-ingress"), "HS-RI-003")
        == []
    )


ACCOUNT = """
apiVersion: v1
kind: ServiceAccount
metadata: {{name: api, namespace: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: app}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec: {{serviceAccountName: {account}, containers: [{{name: api, image: x}}]}}
"""


def test_service_account_missing_from_a_namespace_the_stack_manages_is_reported() -> None:
    [found] = findings(ACCOUNT.format(ns="app", account="apii"), "HS-RI-004")
    assert "serviceAccountName 'apii' names no ServiceAccount in app" in found
    assert findings(ACCOUNT.format(ns="app", account="api"), "HS-RI-004") == []


def test_service_accounts_of_namespaces_the_stack_does_not_manage_are_not_judged() -> None:
    # No ServiceAccount is declared in app: its accounts come from elsewhere.
    assert findings(ACCOUNT.format(ns="other", account="apii"), "HS-RI-004") == []
    assert findings(ACCOUNT.format(ns="app", account="default"), "HS-RI-004") == []
