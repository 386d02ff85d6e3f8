"""``healthstack check --graph``: reachability drawn with Graphviz (allowed, missing, against intent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from healthstack.check.engine import make_context
from healthstack.check.graph import edges, to_dot
from healthstack.check.intent import load_intent
from healthstack.check.loader import load_paths
from healthstack.check.policies import np_intent
from healthstack.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "HS-NP-001"


def _context(case: str):  # type: ignore[no-untyped-def]
    folder = FIXTURES / case
    return make_context(load_paths([str(folder / "objects.yaml")]), None,
                        load_intent(str(folder / "intent.yaml")))  # fmt: skip


def test_every_intent_violation_is_a_red_or_orange_edge() -> None:
    ctx = _context("fail")
    drawn = edges(ctx)
    wrong = {(s, d) for (s, d, kind) in drawn if kind in ("missing", "violates")}
    violations = list(np_intent.evaluate(ctx))
    assert violations
    for violation in violations:
        src, _, rest = violation.message.partition(" -> ")
        assert (src, rest.split(" ", 1)[0]) in wrong, violation.message
    assert len(wrong) == len({v.message.split(" is ")[0].rsplit(" ", 1)[0] for v in violations})


def test_a_manifest_that_meets_its_intent_has_no_red_or_orange_edge() -> None:
    ctx = _context("pass")
    kinds = {kind for (_, _, kind) in edges(ctx)}
    assert "allowed" in kinds
    assert not kinds & {"missing", "violates"}
    dot = to_dot(ctx)
    assert dot.startswith("digraph reachability {")
    assert "intended but missing" in dot  # the legend names every kind


@pytest.mark.skipif(shutil.which("dot") is None, reason="apt-get install graphviz")
def test_check_graph_writes_an_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reach.svg"
    folder = FIXTURES / "fail"
    code = main(["check", str(folder / "objects.yaml"), "--intent", str(folder / "intent.yaml"),
                 "--graph", str(out)])  # fmt: skip
    assert code == 1  # the findings decide the exit code, as without --graph
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml")
    assert "<svg" in svg
    assert "demo/web" in svg
    assert "intended but missing" in svg
    capsys.readouterr()
    assert (
        main(["check", str(folder / "objects.yaml"), "--graph", str(tmp_path / "no" / "x.svg")])
        == 2
    )
    assert "no folder" in capsys.readouterr().err
