"""The checker's detection rate on single-defect mutations of the prod overlay (issue 17).

The overlay is rendered once per module; each mutation changes one thing in a deep copy of its
objects and the checker runs in-process. docs/checks-detection.md describes the method and the
measured rate (``python -m tests.check.test_detection`` prints it).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
import yaml

from healthstack.check.engine import make_context, run_checks
from healthstack.check.intent import Intent, load_intent
from healthstack.check.loader import parse_stream, render_kustomize
from healthstack.check.model import Finding

from .conftest import CRDS, REPO
from .detection_corpus import BENIGN, CLASSES, DEFECTS, PORTABLE, Doc, Mutation

pytestmark = pytest.mark.needs_crds


def render(overlay: str) -> list[Doc]:
    text = render_kustomize(str(REPO / "deploy/overlays" / overlay))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def check(docs: list[Doc], intent: Intent | None) -> list[Finding]:
    objects = parse_stream(yaml.safe_dump_all(docs, sort_keys=False), "rendered.yaml")
    crds = CRDS.resolve() if CRDS.is_dir() else None
    return run_checks(make_context(objects, crds, intent))


def apply(mutation: Mutation, docs: list[Doc], intent: Intent | None) -> list[Finding]:
    return check(mutation.fn(copy.deepcopy(docs)), intent)


# Mutations the checker does not catch yet (each one is a gap to close, not a special case).
KNOWN_MISSES = {
    "external_secret_target_renamed",
}


@pytest.fixture(scope="module")
def prod() -> tuple[list[Doc], Intent]:
    return render("prod"), load_intent(str(REPO / "deploy/intent.yaml"))


def summary(findings: list[Finding]) -> list[str]:
    return [f"{f.check_id} {f.object_ref}: {f.message}" for f in findings]


def test_prod_and_staging_renders_are_clean(prod: tuple[list[Doc], Intent]) -> None:
    docs, intent = prod
    assert summary(check(docs, intent)) == []
    assert summary(check(render("staging"), None)) == []


@pytest.mark.parametrize("mutation", DEFECTS, ids=lambda m: m.name)
def test_defect_is_detected(prod: tuple[list[Doc], Intent], mutation: Mutation) -> None:
    docs, intent = prod
    found = apply(mutation, docs, intent)
    if mutation.name in KNOWN_MISSES:
        # Exact: a miss that starts being caught must leave the list (and the doc's counts).
        assert summary(found) == [], f"{mutation.name} is caught now: drop it from KNOWN_MISSES"
        return
    assert found, f"{mutation.cls}: {mutation.name} produced no finding"
    if mutation.expect:
        assert mutation.expect in {f.check_id for f in found}, summary(found)


@pytest.fixture(scope="module")
def staging() -> list[Doc]:
    return render("staging")


@pytest.mark.parametrize(
    "mutation", [m for m in DEFECTS if m.name in PORTABLE], ids=lambda m: m.name
)
def test_defect_is_detected_on_staging(staging: list[Doc], mutation: Mutation) -> None:
    # Staging is checked as the CLI checks it: against the intent inferred from its objects.
    found = apply(mutation, staging, None)
    assert found, f"{mutation.cls}: {mutation.name} produced no finding on staging"
    if mutation.expect:
        assert mutation.expect in {f.check_id for f in found}, summary(found)


@pytest.mark.parametrize("mutation", BENIGN, ids=lambda m: m.name)
def test_benign_change_is_quiet(prod: tuple[list[Doc], Intent], mutation: Mutation) -> None:
    docs, intent = prod
    assert summary(apply(mutation, docs, intent)) == []


def test_corpus_covers_every_class() -> None:
    per_class = Counter(m.cls for m in DEFECTS)
    assert {cls: per_class[cls] >= 8 for cls in CLASSES} == dict.fromkeys(CLASSES, True)
    assert len(DEFECTS) >= 70
    assert len({m.name for m in DEFECTS}) == len(DEFECTS)


def test_documented_rate_is_the_measured_one() -> None:
    doc = (REPO / "docs/checks-detection.md").read_text()
    for cls in CLASSES:
        mutations = [m for m in DEFECTS if m.cls == cls]
        caught = sum(m.name not in KNOWN_MISSES for m in mutations)
        assert f"| {cls} | {caught}/{len(mutations)} |" in doc, cls
    total = len(DEFECTS) - len(KNOWN_MISSES)
    assert f"| total | {total}/{len(DEFECTS)} |" in doc
    assert f"{len(BENIGN)} benign" in doc
    assert f"{len(PORTABLE)} of them" in doc
    assert {m.name for m in DEFECTS} >= PORTABLE


def rate(docs: list[Doc], intent: Intent | None) -> dict[str, Any]:
    """Per class: caught/total, and the names missed."""
    table: dict[str, Any] = {cls: [0, 0, []] for cls in CLASSES}
    for mutation in DEFECTS:
        row = table[mutation.cls]
        row[1] += 1
        if apply(mutation, docs, intent):
            row[0] += 1
        else:
            row[2].append(mutation.name)
    return table


if __name__ == "__main__":
    docs = render("prod")
    for cls, (caught, total, missed) in rate(
        docs, load_intent(str(REPO / "deploy/intent.yaml"))
    ).items():
        print(f"{cls}: {caught}/{total} {missed}")
