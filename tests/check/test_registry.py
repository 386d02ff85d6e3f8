"""Meta-test: every registered check is fully declared and its fixtures prove it works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from healthstack.check.engine import make_context, run_checks
from healthstack.check.intent import load_intent
from healthstack.check.loader import load_paths
from healthstack.check.registry import CHECKS

from .conftest import FIXTURES

REFERENCE = re.compile(r"^(HIPAA 164\.3\d\d\(|NIST SP 800-(207|53) |CIS Kubernetes Benchmark )")


def test_ids_are_unique_and_stable_shaped() -> None:
    ids = [c.id for c in CHECKS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"HS-[A-Z]{2,3}-\d{3}", i) for i in ids), ids


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_check_is_declared_completely(check) -> None:  # type: ignore[no-untyped-def]
    assert check.title
    assert check.scope
    assert check.family
    assert check.remediation.endswith(".")
    assert any(r.startswith("HIPAA 164.3") for r in check.references), check.references
    assert all(REFERENCE.match(r) for r in check.references), check.references
    assert (FIXTURES / check.id / "pass").is_dir()
    assert (FIXTURES / check.id / "fail").is_dir()


def _findings(check_id: str, folder: Path) -> list[str]:
    check = next(c for c in CHECKS if c.id == check_id)
    objects = load_paths([str(p) for p in sorted(folder.glob("*.yaml")) if p.name != "intent.yaml"])
    intent = load_intent(str(folder / "intent.yaml")) if (folder / "intent.yaml").exists() else None
    return [f.message for f in run_checks(make_context(objects, None, intent), checks=[check])]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_fail_fixture_fails(check) -> None:  # type: ignore[no-untyped-def]
    assert _findings(check.id, FIXTURES / check.id / "fail"), f"{check.id} missed its fail fixture"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_pass_fixture_passes(check) -> None:  # type: ignore[no-untyped-def]
    assert _findings(check.id, FIXTURES / check.id / "pass") == []


def test_every_fixture_folder_belongs_to_a_check() -> None:
    assert {p.name for p in FIXTURES.iterdir() if p.is_dir()} == {c.id for c in CHECKS}
