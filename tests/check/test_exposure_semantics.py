"""Issue 17, exposure beyond the registry fixtures: externalIPs open a Service like a
LoadBalancer does, and IPv6 internet egress must except the private and link-local ranges."""

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
