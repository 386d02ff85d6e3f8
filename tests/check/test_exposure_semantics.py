"""Issue 17, pod security and exposure beyond the registry fixtures: AppArmor Unconfined like
seccomp Unconfined, externalIPs open a Service like a LoadBalancer does, and IPv6 internet egress
must except the private and link-local ranges."""

from __future__ import annotations

from .test_semantics import findings

SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: app}}
spec: {{{extra}selector: {{app: web}}, ports: [{{port: 80, targetPort: http}}]}}
"""


def test_external_ips_on_a_phi_service_are_reported() -> None:
    [found] = findings(SERVICE.format(extra="externalIPs: [203.0.113.7], "), "HS-EX-001")
    assert "externalIPs 203.0.113.7 expose app pods directly" in found
    assert findings(SERVICE.format(extra=""), "HS-EX-001") == []


EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: out, namespace: app}}
spec:
  podSelector: {{}}
  policyTypes: [Egress]
  egress: [{{to: [{{ipBlock: {block}}}], ports: [{{port: 443}}]}}]
"""


def test_ipv6_internet_egress_must_except_unique_local_and_link_local() -> None:
    [found] = findings(EGRESS.format(block='{cidr: "::/0"}'), "HS-NP-002")
    assert "ipBlock ::/0 does not except fc00::/7, fe80::/10" in found
    closed = '{cidr: "::/0", except: ["fc00::/7", "fe80::/10"]}'
    assert findings(EGRESS.format(block=closed), "HS-NP-002") == []


def test_ipv4_internet_egress_with_its_excepts_is_not_asked_for_ipv6_ones() -> None:
    private = '["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]'
    block = f'{{cidr: "0.0.0.0/0", except: {private}}}'
    assert findings(EGRESS.format(block=block), "HS-NP-002") == []


POD = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: w2, namespace: app}}
spec:
  selector: {{matchLabels: {{app: w2}}}}
  template:
    metadata: {{labels: {{app: w2}}, annotations: {annotations}}}
    spec:
      securityContext: {pod}
      containers: [{{name: c, image: x, securityContext: {container}}}]
"""


def pod(annotations: str = "{}", pod: str = "{}", container: str = "{}") -> str:
    return POD.format(annotations=annotations, pod=pod, container=container)


def test_apparmor_unconfined_by_field_or_annotation_is_reported() -> None:
    unconfined = "{appArmorProfile: {type: Unconfined}}"
    for yaml in (
        pod(pod=unconfined),
        pod(container=unconfined),
        pod(annotations="{container.apparmor.security.beta.kubernetes.io/c: unconfined}"),
    ):
        [found] = findings(yaml, "HS-PS-001")
        assert "container c: AppArmor Unconfined" in found


def test_container_apparmor_profile_wins_over_the_pods() -> None:
    confined = pod(
        pod="{appArmorProfile: {type: Unconfined}}",
        container="{appArmorProfile: {type: RuntimeDefault}}",
    )
    assert findings(confined, "HS-PS-001") == []


def test_unmasked_proc_and_unsafe_sysctls_are_reported() -> None:
    [found] = findings(pod(container="{procMount: Unmasked}"), "HS-PS-001")
    assert "container c: procMount Unmasked" in found
    unsafe = "{sysctls: [{name: net.ipv4.tcp_syncookies, value: '1'}, {name: kernel.msgmax, value: '1'}]}"
    [found] = findings(pod(pod=unsafe), "HS-PS-001")
    assert found.endswith("unsafe sysctls kernel.msgmax (not namespaced to the pod)")
    safe = "{sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: '0'}]}"
    assert findings(pod(pod=safe), "HS-PS-001") == []


INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: app}}
spec:
  ingressClassName: nginx
  {tls}
  rules:
    - host: fhir.example.com
      http:
        paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]
"""


def test_ingress_in_a_phi_namespace_is_a_way_around_the_gateway() -> None:
    [plain] = findings(INGRESS.format(tls=""), "HS-EX-001")
    assert "Ingress serves fhir.example.com without TLS, around the Istio gateway" in plain
    tls = "tls: [{hosts: [fhir.example.com], secretName: fhir-tls}]"
    [beside] = findings(INGRESS.format(tls=tls), "HS-EX-001")
    assert "Ingress exposes app pods beside the Istio gateway" in beside
