"""The README's check section states numbers that hold."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest

from healthstack.check.registry import CHECKS
from healthstack.cli import main

from .conftest import REPO, SEED

README = (REPO / "README.md").read_text("utf-8")


def test_check_count() -> None:
    assert f"{len(CHECKS)} checks (" in README


def test_seed_finding_count() -> None:
    if not SEED.is_dir():
        pytest.skip(f"seed manifests not available at {SEED}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["check", str(SEED), "--format", "json"])
    found = len(json.loads(out.getvalue())["findings"])
    stated = re.search(r"the seed: (\d+) findings", README)
    assert stated is not None
    assert int(stated.group(1)) == found
