"""HS-DH-004: the PHI database port is reachable only from workloads of its own namespace (or
the clients the intent names in another one).

Probes stand in for "any other pod": an unlabeled pod in the same namespace, a pod in a new
namespace, and the system pods (DNS, istiod, ingress gateway, Prometheus). The database's
ingress is judged on its own: a rule admitting every pod of the namespace is reported even
while today's pods there cannot egress to it (the next pod added may).
"""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.reachability import Endpoint, Port

DB_PORTS = (5432,)


def database_ports(ep: Endpoint) -> list[Port]:
    return [p for p in ep.ports if p.number in DB_PORTS or p.name in ("postgres", "postgresql")]


def _clients(ctx: Context, dst: Endpoint, port: Port) -> set[str]:
    """Workloads the intent (declared or inferred) says must reach this database port: a
    service in another namespace whose configuration names ``<service>.<namespace>``."""
    flows = ctx.intent.flows if ctx.intent is not None else []
    return {
        f.src
        for f in flows
        if f.allowed and f.dst == dst.key and f.port.number == port.number and f.src != "*"
    }


def evaluate(ctx: Context) -> Iterator[Violation]:
    net = ctx.net
    for dst in net.workloads:
        for port in database_ports(dst):
            clients = _clients(ctx, dst, port)
            intruders = [
                src
                for src in [*net.endpoints, *net.probes]
                if src.key != dst.key
                and (src.system or src.obj is None or src.namespace != dst.namespace)
                and (src.system or src.obj is None or src.key not in clients)
                and net.ingress_verdict(src, dst, port).allowed
            ]
            if intruders and dst.obj is not None:
                why = net.ingress_verdict(intruders[0], dst, port).ingress
                names = ", ".join(e.key for e in intruders)
                yield Violation(dst.obj, f"database port {port} reachable from {names} ({why})")


CHECK = Check(
    id="HS-DH-004",
    title="PHI database reachable only from the service",
    severity=Severity.CRITICAL,
    scope=("StatefulSet", "Cluster", "NetworkPolicy"),
    references=(
        "HIPAA 164.312(a)(1)",
        "HIPAA 164.312(e)(1)",
        "NIST SP 800-207 tenet 6",
        "NIST SP 800-53 AC-4",
        "CIS Kubernetes Benchmark 5.3.2",
    ),
    remediation="Add a NetworkPolicy on the database pods allowing ingress on 5432 only from the "
    "application pods (podSelector) in the same namespace.",
    evaluate=evaluate,
    family="HIPAA data handling",
)
