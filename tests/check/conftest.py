"""Shared paths for the check tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
SEED = REPO / "../shared/seed/manifests"
CRDS = REPO / "../shared/crds"


@pytest.fixture
def crds_dir() -> Path:
    if not CRDS.is_dir():
        pytest.skip(f"CRDs not available at {CRDS} (../shared/crds from the repo root)")
    return CRDS.resolve()
