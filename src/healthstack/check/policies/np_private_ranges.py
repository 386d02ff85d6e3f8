"""HS-NP-002: egress to ``0.0.0.0/0`` excepts the private and cluster address ranges.

Without ``except`` for RFC 1918, link-local (cloud metadata 169.254.169.254) and carrier-grade NAT
ranges, an "internet" rule also opens every node, pod and service address on that port: the
default-deny stops meaning anything for in-cluster traffic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.reachability import in_block

# One address in each range a cluster's nodes, pods, services or metadata endpoint may use.
PRIVATE_PROBES = {
    "10.0.0.0/8": "10.0.0.1",
    "172.16.0.0/12": "172.16.0.1",
    "192.168.0.0/16": "192.168.0.1",
    "169.254.0.0/16": "169.254.169.254",
    "100.64.0.0/10": "100.64.0.1",
    # IPv6: unique local (dual-stack pod/service ranges, AWS's fd00:ec2::254 metadata) and
    # link-local addresses.
    "fc00::/7": "fd00:ec2::254",
    "fe80::/10": "fe80::1",
}
PUBLIC_PROBES = {4: "8.8.8.8", 6: "2001:4860:4860::8888"}


def _public(block: dict[str, Any]) -> bool:
    """The block reaches the internet (of its address family)."""
    return any(in_block(block, ip) for ip in PUBLIC_PROBES.values())


def evaluate(ctx: Context) -> Iterator[Violation]:
    for policy in ctx.inv.of_kind("NetworkPolicy"):
        for index, rule in enumerate(policy.spec.get("egress") or []):
            for j, peer in enumerate((rule or {}).get("to") or []):
                block = peer.get("ipBlock") if isinstance(peer, dict) else None
                if not isinstance(block, dict) or not _public(block):
                    continue
                open_ranges = [r for r, ip in PRIVATE_PROBES.items() if in_block(block, ip)]
                if open_ranges:
                    yield Violation(
                        policy,
                        f"egress rule #{index + 1} ipBlock {block.get('cidr')} does not except "
                        f"{', '.join(open_ranges)}: it also opens in-cluster and metadata addresses",
                        f"spec.egress.{index}.to.{j}.ipBlock",
                    )


CHECK = Check(
    id="HS-NP-002",
    title="Internet egress excepts private and cluster address ranges",
    severity=Severity.HIGH,
    scope=("NetworkPolicy",),
    references=("HIPAA 164.312(e)(1)", "NIST SP 800-53 SC-7(5)", "NIST SP 800-207 tenet 6"),
    remediation="Add except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, "
    "100.64.0.0/10] to the 0.0.0.0/0 ipBlock, except: [fc00::/7, fe80::/10] to ::/0 (or name "
    "the external CIDRs).",
    evaluate=evaluate,
    family="zero trust",
)
