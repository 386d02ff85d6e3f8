"""Issue 17: with --kustomize, findings point at the base/component file that produced the
object, relative to the repository (uriBaseId), and rules carry security-severity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from healthstack.cli import main

from .conftest import REPO


@pytest.fixture
def exposed_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    service = tmp_path / "deploy/base/service.yaml"
    text = service.read_text("utf-8")
    assert "type: ClusterIP" in text
    service.write_text(text.replace("type: ClusterIP", "type: NodePort"), "utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_sarif_points_at_the_source_file(
    exposed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--kustomize", "deploy/overlays/prod", "--format", "sarif"])
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert code == 1
    [result] = [r for r in run["results"] if r["ruleId"] == "HS-EX-001"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "deploy/base/service.yaml",
        "uriBaseId": "%SRCROOT%",
    }
    lines = (exposed_repo / "deploy/base/service.yaml").read_text("utf-8").splitlines()
    assert lines[location["region"]["startLine"] - 1].strip().startswith("type: NodePort")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == exposed_repo.resolve().as_uri() + "/"
    rule = run["tool"]["driver"]["rules"][result["ruleIndex"]]
    assert rule["properties"]["security-severity"] == "9.5"
    assert run["properties"]["intent"] == "inferred"


def test_json_names_the_source_file(exposed_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", "--kustomize", "deploy/overlays/prod", "--format", "json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert {f["file"] for f in findings} == {"deploy/base/service.yaml"}


def test_field_line_falls_back_to_the_deepest_parent(tmp_path: Path) -> None:
    from healthstack.check.positions import field_line

    file = tmp_path / "s.yaml"
    file.write_text("a: 1\n---\nkind: Service\nspec:\n  ports: []\n", "utf-8")
    assert field_line(str(file), 3, "Service", "spec.ports") == 5
    assert field_line(str(file), 3, "Service", "spec.type") == 4
    assert field_line(str(file), 3, "Deployment", "spec.type") == 3  # not that object
    assert field_line(str(tmp_path / "missing.yaml"), 7, "Service", "spec") == 7


def test_sarif_region_of_a_kustomize_finding_is_the_offending_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "deploy", tmp_path / "deploy")
    deployment = tmp_path / "deploy/base/deployment.yaml"
    lines = deployment.read_text("utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line == "      annotations:")
    lines.insert(at + 1, '        traffic.sidecar.istio.io/excludeOutboundPorts: "5432"')
    deployment.write_text("\n".join(lines) + "\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "--kustomize", "deploy/overlays/prod", "--format", "sarif"]) == 1
    run = json.loads(capsys.readouterr().out)["runs"][0]
    [result] = [r for r in run["results"] if r["ruleId"] == "HS-MS-009"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "deploy/base/deployment.yaml"
    assert location["region"]["startLine"] == at + 1  # the pod template's annotations
