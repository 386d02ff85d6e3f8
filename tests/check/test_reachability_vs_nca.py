"""Cross-check the reachability engine against IBM's network-config-analyzer (an independent
implementation, installed in its own venv by `make tools`) on varied scenarios."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from healthstack.check.inventory import Inventory
from healthstack.check.loader import load_paths
from healthstack.check.reachability import Network, Port

from .conftest import REPO

NCA = REPO / ".tools/nca/bin/nca"
SCENARIOS = Path(__file__).parent / "nca"
BASE = SCENARIOS / "base"
NAMES = ["default_deny", "ns_selectors", "ipblock_except", "ports_named_ranges", "egress_ingress"]
LINE = re.compile(r"^(\S+?)(?:\[\w+\])? => (\S+?)(?:\[\w+\])? : (.+)$")
GROUP = re.compile(r"\{protocols:([A-Z, ]+?)(?:,dst_ports:([0-9,\-]+))?\}")
PUBLIC_IPS = ("8.8.8.8", "1.1.1.1", "9.9.9.9")

Allowed = dict[tuple[str, str], str]  # (src, dst) -> NCA connection text


def run_nca(scenario: str) -> Allowed:
    if not NCA.exists():
        pytest.skip(f"{NCA} missing: run `make tools` to install network-config-analyzer")
    return dict(_nca_output(scenario))


@cache
def _nca_output(scenario: str) -> Allowed:
    if not NCA.exists():
        pytest.skip(f"{NCA} missing: run `make tools` to install network-config-analyzer")
    proc = subprocess.run(
        [
            str(NCA),
            "--connectivity",
            str(SCENARIOS / scenario),
            "--pod_list",
            str(BASE),
            "--ns_list",
            str(BASE),
            "--output_format",
            "txt_no_fw_rules",
            "--output_endpoints",
            "deployments",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    found: Allowed = {}
    for line in proc.stdout.splitlines():
        match = LINE.match(line.strip())
        if match:
            found[(match.group(1), match.group(2))] = match.group(3)
    return found


def nca_allows(conns: str | None, port: Port) -> bool:
    if conns is None or conns.strip() == "No connections":
        return False
    if conns.strip() == "All connections":
        return True
    for protocols, ports in GROUP.findall(conns):
        if port.protocol not in {p.strip() for p in protocols.split(",")}:
            continue
        if not ports or any(_in_range(port.number, r) for r in ports.split(",")):
            return True
    return False


def _in_range(number: int, text: str) -> bool:
    low, _, high = text.partition("-")
    return int(low) <= number <= int(high or low)


def nca_internet(found: Allowed, src: str, ip: str, port: Port) -> bool:
    addr = ipaddress.ip_address(ip)
    for (s, d), conns in found.items():
        if s == src and "-" in d and d[0].isdigit():
            low, high = (ipaddress.ip_address(x) for x in d.split("-"))
            if low <= addr <= high and nca_allows(conns, port):
                return True
    return False


def _network(scenario: str, ip: str = "8.8.8.8") -> Network:
    objects = load_paths([str(BASE), str(SCENARIOS / scenario)])
    return Network(Inventory(objects), internet_ip=ip)


@pytest.mark.parametrize("scenario", NAMES)
def test_pod_to_pod_matrix_agrees_with_nca(scenario: str) -> None:
    found, net = run_nca(scenario), _network(scenario)
    compared, disagreements = 0, []
    for src in net.workloads:
        for dst in net.workloads:
            for port in dst.ports if src.key != dst.key else ():
                ours = net.verdict(src, dst, port).allowed
                theirs = nca_allows(found.get((src.key, dst.key)), port)
                compared += 1
                if ours != theirs:
                    disagreements.append(f"{src.key} -> {dst.key} {port}: ours={ours} nca={theirs}")
    assert compared >= 30
    assert disagreements == []


@pytest.mark.parametrize("scenario", NAMES)
def test_internet_egress_agrees_with_nca(scenario: str) -> None:
    found = run_nca(scenario)
    disagreements = []
    for ip in PUBLIC_IPS:
        net = _network(scenario, ip)
        for src in net.workloads:
            for port in (Port(443, "TCP"), Port(53, "UDP")):
                ours = net.verdict(src, net.internet, port).allowed
                theirs = nca_internet(found, src.key, ip, port)
                if ours != theirs:
                    disagreements.append(f"{src.key} -> {ip} {port}: ours={ours} nca={theirs}")
    assert disagreements == []


def test_scenarios_are_not_trivial() -> None:
    """Each scenario denies something and allows something, or agreement would prove little."""
    for scenario in NAMES:
        net = _network(scenario)
        verdicts = {
            net.verdict(s, d, p).allowed
            for s in net.workloads
            for d in net.workloads
            for p in d.ports
            if s.key != d.key
        }
        assert verdicts == {True, False}, scenario
