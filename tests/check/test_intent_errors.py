"""Intent file mistakes are usage errors (exit 2) naming the file and entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthstack.cli import main

CLEAN = Path(__file__).parent / "cli" / "clean.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "allow:\n  - {from: demo/web, to: nowhere, ports: [80]}\n",
            ":2: unknown endpoint 'nowhere'",
        ),
        ("allow:\n  - {from: demo/web, to: dns, ports: [53/QUIC]}\n", "allow[0]: port '53/QUIC'"),
        ("deny:\n  - {from: demo/web}\n", "deny[0]: needs 'from', 'to'"),
        ("- just a list\n", "must be a mapping"),
    ],
)
def test_bad_intent_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    intent = tmp_path / "intent.yaml"
    intent.write_text(text, "utf-8")
    assert main(["check", str(CLEAN), "--intent", str(intent)]) == 2
    assert expected in capsys.readouterr().err


def test_intent_violation_is_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    intent = tmp_path / "intent.yaml"
    intent.write_text("allow:\n  - {from: any, to: demo/web, ports: [4000]}\n", "utf-8")
    assert main(["check", str(CLEAN), "--intent", str(intent)]) == 1
    out = capsys.readouterr().out
    assert "HS-NP-001" in out
    assert "any -> demo/web 4000/TCP is denied" in out
    assert "NetworkPolicy/demo/web" in out
