"""docs/fhir-search.md is generated from the server's own data and must match it."""

from __future__ import annotations

from pathlib import Path

from healthstack.fhir import reference_docs

DOC = Path(__file__).resolve().parents[2] / "docs" / "fhir-search.md"


def test_the_search_reference_matches_the_code() -> None:
    assert DOC.read_text() == reference_docs.render(), "run `make docs`"
