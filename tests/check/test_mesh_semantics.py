"""Issue 17, mesh semantics beyond the registry fixtures: which ServiceEntries PHI sidecars
import (exportTo), and mesh-wide DestinationRules whose wildcard host reaches STRICT pods."""

from __future__ import annotations

from .test_semantics import findings

SERVICE_ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: any-https, namespace: {ns}}}
spec:
  hosts: ["*.example.com"]
  {export}
  location: {location}
  resolution: NONE
  ports: [{{number: 443, name: tls, protocol: TLS}}]
"""


def entry(ns: str = "app", export: str = "", location: str = "MESH_EXTERNAL") -> str:
    return SERVICE_ENTRY.format(ns=ns, export=export, location=location)


def test_wildcard_service_entry_in_a_phi_namespace_is_reported() -> None:
    [found] = findings(entry(), "HS-MS-007")
    assert "*.example.com" in found
    assert "PHI namespace(s) app:" in found


def test_wildcard_service_entry_exported_from_elsewhere_reaches_phi_sidecars() -> None:
    # exportTo defaults to every namespace: an entry in a tooling namespace is imported by app.
    assert findings(entry(ns="tools"), "HS-MS-007")
    assert findings(entry(ns="tools", export='exportTo: ["app"]'), "HS-MS-007")


def test_wildcard_service_entry_kept_out_of_phi_namespaces_passes() -> None:
    assert findings(entry(ns="tools", export='exportTo: ["."]'), "HS-MS-007") == []
    assert findings(entry(export='exportTo: ["~"]'), "HS-MS-007") == []
    assert findings(entry(location="MESH_INTERNAL"), "HS-MS-007") == []


STRICT_WEB = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: app}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def rule(host: str, mode: str, ns: str = "istio-system", name: str = "mesh") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec: {{host: "{host}", trafficPolicy: {{tls: {{mode: {mode}}}}}}}
"""


def test_mesh_wide_wildcard_destination_rule_that_disables_tls_is_reported() -> None:
    [found] = findings(STRICT_WEB + rule("*.local", "DISABLE"), "HS-MS-001")
    assert found.startswith("DestinationRule/istio-system/mesh:")
    assert "tls mode DISABLE towards app/web" in found
    assert findings(STRICT_WEB + rule("*.app.svc.cluster.local", "SIMPLE", "app"), "HS-MS-001")


def test_wildcard_destination_rule_yields_to_an_exact_host_and_other_namespaces() -> None:
    exact = rule("web.app.svc.cluster.local", "ISTIO_MUTUAL", "app", "web")
    assert findings(STRICT_WEB + rule("*.local", "DISABLE") + exact, "HS-MS-001") == []
    assert findings(STRICT_WEB + rule("*.db.svc.cluster.local", "DISABLE"), "HS-MS-001") == []
    assert findings(STRICT_WEB + rule("*.local", "ISTIO_MUTUAL"), "HS-MS-001") == []


POD_MONITOR = """
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {{name: web, namespace: app}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  podMetricsEndpoints: [{{port: {port}, path: /metrics}}]
"""


def test_pod_monitor_scraping_an_app_port_in_plain_http_under_strict_is_reported() -> None:
    [found] = findings(STRICT_WEB + POD_MONITOR.format(port="http"), "HS-MS-005")
    assert found.startswith("PodMonitor/app/web:")
    assert "app/web:4000 over plain HTTP" in found


def test_pod_monitor_on_the_sidecars_merged_metrics_port_passes() -> None:
    assert findings(STRICT_WEB + POD_MONITOR.format(port="http-envoy-prom"), "HS-MS-005") == []


def allow(rule: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: allow-nothing, namespace: app}}
spec: {{}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: web, namespace: app}}
spec:
  action: ALLOW
  selector: {{matchLabels: {{app: web}}}}
  rules: [{rule}]
"""


def test_allow_rule_that_names_no_caller_is_reported() -> None:
    everyone = '{from: [{source: {principals: ["*"]}}], to: [{operation: {ports: ["4000"]}}]}'
    [found] = findings(allow(everyone), "HS-ZT-007")
    assert "rule #1 names no caller" in found
    assert findings(allow('{to: [{operation: {ports: ["4000"]}}]}'), "HS-ZT-007")


def test_allow_rule_naming_its_caller_or_a_condition_passes() -> None:
    gateway = '{from: [{source: {principals: ["cluster.local/ns/istio-system/sa/gw"]}}]}'
    assert findings(allow(gateway), "HS-ZT-007") == []
    jwt = '{when: [{key: "request.auth.claims[iss]", values: ["https://idp.example"]}]}'
    assert findings(allow(jwt), "HS-ZT-007") == []
    narrowed = '{from: [{source: {principals: ["*"], namespaces: ["app"]}}]}'
    assert findings(allow(narrowed), "HS-ZT-007") == []


JWT = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: {ns}}}
spec: {{jwtRules: [{{issuer: "https://idp.example"}}]}}
"""


def test_request_authentication_without_a_policy_requiring_a_token_is_reported() -> None:
    [found] = findings(JWT.format(ns="app"), "HS-MS-008")
    assert "never required on app/web: a request without a token is admitted" in found


def test_mesh_wide_request_authentication_is_left_to_the_gateway() -> None:
    assert findings(JWT.format(ns="istio-system"), "HS-MS-008") == []


def test_request_authentication_enforced_by_deny_or_claim_condition_passes() -> None:
    deny = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: app}
spec: {action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}
"""
    assert findings(JWT.format(ns="app") + deny, "HS-MS-008") == []
    claim = 'rules: [{when: [{key: "request.auth.claims[iss]", values: ["https://idp.example"]}]}]'
    condition = f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: web, namespace: app}}
spec: {{selector: {{matchLabels: {{app: web}}}}, {claim}}}
"""
    assert findings(JWT.format(ns="app") + condition, "HS-MS-008") == []


PLAIN_ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: app}
spec:
  hosts: [api.partner.example]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
"""


def test_plaintext_port_to_an_external_host_is_reported() -> None:
    [found] = findings(PLAIN_ENTRY, "HS-MS-007")
    assert "port 80 is HTTP to external api.partner.example with no DestinationRule" in found


def test_plaintext_port_with_tls_origination_passes() -> None:
    origination = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: partner, namespace: app}
spec:
  host: api.partner.example
  trafficPolicy:
    portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE, sni: api.partner.example}}]
"""
    assert findings(PLAIN_ENTRY + origination, "HS-MS-007") == []


def paths_policy(action: str, key: str, path: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: p, namespace: app}}
spec:
  action: {action}
  rules: [{{to: [{{operation: {{{key}: ["{path}"]}}}}]}}]
"""


def test_exact_paths_in_deny_rules_and_allow_not_paths_are_reported() -> None:
    [deny] = findings(paths_policy("DENY", "paths", "/admin"), "HS-MS-010")
    assert "DENY rule #1 paths /admin match only the literal path" in deny
    [allow] = findings(paths_policy("ALLOW", "notPaths", "/internal"), "HS-MS-010")
    assert "(use /internal*)" in allow


def test_prefix_deny_rules_and_exact_allow_paths_pass() -> None:
    assert findings(paths_policy("DENY", "paths", "/admin*"), "HS-MS-010") == []
    assert findings(paths_policy("ALLOW", "paths", "/fhir/metadata"), "HS-MS-010") == []
