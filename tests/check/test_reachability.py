"""Reachability engine semantics and the explanations it gives."""

from __future__ import annotations

from healthstack.check.intent import load_intent
from healthstack.check.inventory import Inventory
from healthstack.check.loader import load_paths, parse_stream
from healthstack.check.reachability import Network, Port, render_matrix

from .conftest import SEED
from .test_reachability_vs_nca import BASE, SCENARIOS


def net_for(scenario: str, ip: str = "8.8.8.8") -> Network:
    return Network(Inventory(load_paths([str(BASE), str(SCENARIOS / scenario)])), ip)


def test_verdict_names_the_rule_that_allowed() -> None:
    net = net_for("default_deny")
    web, worker = net.by_key("app/web"), net.by_key("app/worker")
    assert web is not None
    assert worker is not None
    verdict = net.verdict(web, worker, Port(7000, "TCP", "http"))
    assert verdict.allowed
    assert verdict.egress == "NetworkPolicy/app/web egress rule #1"
    assert verdict.ingress == "NetworkPolicy/app/worker ingress rule #1"


def test_denial_names_the_selecting_policies() -> None:
    net = net_for("default_deny")
    web, worker = net.by_key("app/web"), net.by_key("app/worker")
    assert web is not None
    assert worker is not None
    verdict = net.verdict(web, worker, Port(7001, "TCP", "grpc"))
    assert not verdict.allowed
    assert "NetworkPolicy/app/deny-all" in verdict.egress
    assert "no rule admits" in verdict.egress
    assert {p.name for p in verdict.blamed} >= {"deny-all", "web"}


def test_ipblock_except_and_internet_address() -> None:
    web_allowed = {ip: net_for("ipblock_except", ip) for ip in ("1.1.1.1", "8.8.8.8")}
    for ip, net in web_allowed.items():
        web = net.by_key("app/web")
        assert web is not None
        assert net.verdict(web, net.internet, Port(443)).allowed is (ip == "1.1.1.1")


def test_unlabeled_probe_pods_exist_per_namespace() -> None:
    net = net_for("default_deny")
    assert {"app/*", "data/*", "any"} <= {p.key for p in net.probes}


def test_matrix_marks_allowed_and_denied() -> None:
    table = render_matrix(net_for("egress_ingress")).splitlines()
    assert table[0].startswith("from \\ to")
    web_row = next(r for r in table if r.startswith("app/web "))
    assert "Y" in web_row
    assert "." in web_row


def test_seed_postgres_reachable_from_everything() -> None:
    net = Network(Inventory(load_paths([str(SEED)])))
    pg, probe = net.by_key("healthcare-prod/postgres"), net.by_key("any")
    assert pg is not None
    assert probe is not None
    verdict = net.verdict(probe, pg, Port(5432))
    assert verdict.allowed
    assert "no NetworkPolicy selects" in verdict.ingress


def test_intent_file_lines_are_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "intent.yaml"
    path.write_text("allow:\n  - {from: a/b, to: dns, ports: [53/UDP, 53]}\n", "utf-8")
    flows = load_intent(str(path)).flows
    assert [(f.port.protocol, f.line, f.allowed) for f in flows] == [
        ("UDP", 2, True),
        ("TCP", 2, True),
    ]


def test_list_kind_is_flattened() -> None:
    text = "kind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
    assert [o.ref for o in parse_stream(text, "x")] == ["ConfigMap/default/a"]
