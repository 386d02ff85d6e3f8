"""NetworkPolicy reachability: which endpoint can open which port on which other endpoint.

A connection is allowed when the source's egress AND the destination's ingress allow it; a pod no
policy selects for a direction is open in that direction (Kubernetes semantics). Endpoints are the
set's pod templates plus the well-known system pods (with the namespace label the API server adds),
the internet (one public IP) and two probes: an unlabeled pod in each namespace and one in a new
namespace. Every verdict carries the policy and rule responsible so differences can be explained.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from healthstack.check.inventory import NAME_LABEL, Inventory
from healthstack.check.model import K8sObject
from healthstack.check.selectors import matches

DEFAULT_INTERNET_IP = "8.8.8.8"
ANY_NAMESPACE = "any-namespace"


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


@dataclass(frozen=True)
class Endpoint:
    """A pod (template), a system pod, a probe, or the internet (``namespace`` None)."""

    key: str
    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    ports: tuple[Port, ...] = ()
    ip: str | None = None
    obj: K8sObject | None = field(default=None, hash=False, compare=False)
    system: bool = False


def _sys(alias: str, ns: str, labels: dict[str, str], *ports: Port) -> Endpoint:
    return Endpoint(alias, ns, labels, ports, system=True)


SYSTEM_ENDPOINTS = (
    _sys(
        "dns",
        "kube-system",
        {"k8s-app": "kube-dns"},
        Port(53, "UDP", "dns"),
        Port(53, "TCP", "dns-tcp"),
    ),
    _sys(
        "istiod",
        "istio-system",
        {"app": "istiod", "istio": "pilot"},
        Port(15012, "TCP", "grpc-xds"),
        Port(15017, "TCP", "https-webhook"),
    ),
    _sys(
        "ingressgateway",
        "istio-system",
        {"app": "istio-ingressgateway", "istio": "ingressgateway"},
        Port(8080, "TCP", "http2"),
        Port(8443, "TCP", "https"),
    ),
    _sys(
        "prometheus",
        "monitoring",
        {"app.kubernetes.io/name": "prometheus"},
        Port(9090, "TCP", "web"),
    ),
)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress: str  # which policy/rule allowed or why denied, source side
    ingress: str  # same for the destination side
    blamed: tuple[K8sObject, ...] = ()  # policies whose rule allowed it, or that denied it

    @property
    def fix_target(self) -> K8sObject | None:
        """On a denial: the policy that should admit the flow (a pod's own policy before the
        namespace default-deny); None when no policy is involved."""
        return self.blamed[0] if self.blamed else None


def _ports_of(containers: Iterable[dict[str, Any]]) -> tuple[Port, ...]:
    ports = []
    for c in containers:
        for p in c.get("ports") or []:
            if isinstance(p.get("containerPort"), int):
                ports.append(Port(p["containerPort"], str(p.get("protocol", "TCP")), p.get("name")))
    return tuple(ports)


class Network:
    """Endpoints and policies of one inventory; ``verdict`` answers one connection."""

    def __init__(self, inv: Inventory, internet_ip: str = DEFAULT_INTERNET_IP) -> None:
        self.inv = inv
        self.policies = inv.of_kind("NetworkPolicy")
        self.workloads = [
            Endpoint(w.key, w.namespace, w.pod_labels, _ports_of(w.containers), obj=w.obj)
            for w in inv.workloads
        ]
        self.internet = Endpoint("internet", None, ip=internet_ip)
        ns_names = sorted({w.namespace for w in inv.workloads} | set(inv.namespaces))
        self.probes = [Endpoint(f"{ns}/*", ns) for ns in ns_names if ns not in _SYSTEM_NS]
        self.probes.append(Endpoint("any", ANY_NAMESPACE))
        self.endpoints = [*self.workloads, *SYSTEM_ENDPOINTS]

    def by_key(self, key: str) -> Endpoint | None:
        every = [*self.endpoints, *self.probes, self.internet]
        return next((e for e in every if e.key == key), None)

    def ns_labels(self, namespace: str) -> dict[str, str]:
        return self.inv.namespace_labels(namespace)

    def verdict(self, src: Endpoint, dst: Endpoint, port: Port) -> Verdict:
        eg_ok, eg_why, eg_blame = self._side(src, dst, port, "Egress")
        in_ok, in_why, in_blame = self._side(dst, src, port, "Ingress")
        return Verdict(eg_ok and in_ok, eg_why, in_why, eg_blame + in_blame)

    def ingress_verdict(self, src: Endpoint, dst: Endpoint, port: Port) -> Verdict:
        """The destination's ingress alone, whatever the source's egress says."""
        ok, why, blame = self._side(dst, src, port, "Ingress")
        return Verdict(ok, "not judged (ingress only)", why, blame)

    def _side(
        self, subject: Endpoint, peer: Endpoint, port: Port, direction: str
    ) -> tuple[bool, str, tuple[K8sObject, ...]]:
        """Does ``subject``'s ``direction`` policy admit ``peer`` on ``port``? The port always
        belongs to the destination, which is ``peer`` for egress and ``subject`` for ingress."""
        if subject.namespace is None:
            return True, "outside the cluster (no policy applies)", ()
        selecting = [p for p in self.policies if _applies(p, subject, direction)]
        if not selecting:
            return True, f"no NetworkPolicy selects {subject.key} for {direction}", ()
        dst = peer if direction == "Egress" else subject
        for policy in selecting:
            for index, rule in enumerate(_rules(policy, direction)):
                if self._rule_admits(policy, rule, peer, dst, port, direction):
                    return True, f"{policy.ref} {direction.lower()} rule #{index + 1}", (policy,)
        names = ", ".join(p.ref for p in selecting)
        # The policy to fix is one written for this pod, not the namespace's default-deny:
        # policies with rules (or a non-empty podSelector) come first in ``blamed``.
        ranked = sorted(selecting, key=lambda p: _is_deny_all(p, direction))
        return (
            False,
            f"{direction} of {subject.key} limited by {names}; no rule admits it",
            tuple(ranked),
        )

    def _rule_admits(
        self,
        policy: K8sObject,
        rule: dict[str, Any],
        peer: Endpoint,
        dst: Endpoint,
        port: Port,
        direction: str,
    ) -> bool:
        peers = rule.get("to" if direction == "Egress" else "from")
        if peers and not any(self._peer_matches(policy, p, peer) for p in peers):
            return False
        ports = rule.get("ports")
        return not ports or any(_port_matches(p, port, dst) for p in ports)

    def _peer_matches(self, policy: K8sObject, peer_rule: dict[str, Any], ep: Endpoint) -> bool:
        if "ipBlock" in peer_rule:
            return ep.ip is not None and in_block(peer_rule["ipBlock"], ep.ip)
        if ep.namespace is None:
            return False  # pod/namespace selectors only ever match pods in the cluster
        ns_sel = peer_rule.get("namespaceSelector")
        pod_sel = peer_rule.get("podSelector")
        if ns_sel is None:
            return ep.namespace == policy.namespace and matches(pod_sel, ep.labels)
        ns_labels = (
            self.ns_labels(ep.namespace)
            if ep.namespace != ANY_NAMESPACE
            else {NAME_LABEL: ANY_NAMESPACE}
        )
        return matches(ns_sel, ns_labels) and (pod_sel is None or matches(pod_sel, ep.labels))


_SYSTEM_NS = frozenset({"kube-system", "istio-system", "monitoring"})


def _applies(policy: K8sObject, ep: Endpoint, direction: str) -> bool:
    if policy.namespace != ep.namespace:
        return False
    if direction not in policy_types(policy):
        return False
    return matches(policy.spec.get("podSelector") or {}, ep.labels)


def policy_types(policy: K8sObject) -> list[str]:
    """``policyTypes`` with the API defaults: Ingress always, Egress only when ``egress`` holds
    at least one rule (``egress: []`` without policyTypes leaves egress open)."""
    declared = policy.spec.get("policyTypes")
    if declared:
        return [str(t) for t in declared]
    return ["Ingress", *(["Egress"] if policy.spec.get("egress") else [])]


def _is_deny_all(policy: K8sObject, direction: str) -> bool:
    return not policy.spec.get("podSelector") and not _rules(policy, direction)


def _rules(policy: K8sObject, direction: str) -> list[dict[str, Any]]:
    rules = policy.spec.get(direction.lower()) or []
    return [r if isinstance(r, dict) else {} for r in rules]


def in_block(block: dict[str, Any], ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    try:
        if addr not in ipaddress.ip_network(str(block.get("cidr")), strict=False):
            return False
        return not any(
            addr in ipaddress.ip_network(str(e), strict=False) for e in block.get("except") or []
        )
    except ValueError:
        return False


def _port_matches(rule_port: dict[str, Any], port: Port, dst: Endpoint) -> bool:
    if str(rule_port.get("protocol", "TCP")) != port.protocol:
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, int):
        end = rule_port.get("endPort")
        return wanted <= port.number <= (end if isinstance(end, int) else wanted)
    # A named port resolves against the destination pod's declared container ports.
    return port.name == str(wanted) and dst.namespace is not None and port in dst.ports


def matrix(net: Network) -> dict[tuple[str, str, str], Verdict]:
    """(source key, destination key, port) -> verdict for every declared destination port."""
    targets = [*net.endpoints, net.internet]
    result: dict[tuple[str, str, str], Verdict] = {}
    for src in [*net.endpoints, *net.probes]:
        for dst in targets:
            for port in internet_ports() if dst is net.internet else dst.ports:
                if src.key != dst.key:
                    result[(src.key, dst.key, str(port))] = net.verdict(src, dst, port)
    return result


def internet_ports() -> tuple[Port, ...]:
    return (Port(443, "TCP", None),)


def render_matrix(net: Network) -> str:
    """Rows: sources; columns: destination ports; ``Y`` allowed, ``.`` denied."""
    cells = matrix(net)
    columns = sorted({(d, p) for (_, d, p) in cells})
    rows = [e.key for e in [*net.endpoints, *net.probes]]
    header = ["from \\ to", *[f"{d}:{p}" for d, p in columns]]
    table = [header] + [
        [
            src,
            *[
                "-" if (src, d, p) not in cells else "Y" if cells[(src, d, p)].allowed else "."
                for d, p in columns
            ],
        ]
        for src in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )
