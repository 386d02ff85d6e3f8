"""Test results from the last run, read from a JUnit XML file (``pytest --junitxml``).

A node id ``tests/a/test_b.py::test_c`` is matched by pytest's JUnit ``classname``
(``tests.a.test_b``) and ``name`` (``test_c`` or, parametrized, ``test_c[...]``): every case of a
parametrized test must pass for the test to count as passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from healthstack.errors import HealthstackError

NOT_RUN = "not run"
# Worst first: one failed case makes the whole test failed.
_ORDER = ("failed", "error", "skipped", "passed")


def load(path: Path) -> dict[str, str]:
    """node id -> passed | failed | error | skipped."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314
    except (OSError, ET.ParseError) as exc:
        raise HealthstackError(f"--junit {path}: not a readable JUnit XML file ({exc})") from None
    results: dict[str, str] = {}
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        node = f"{classname.replace('.', '/')}.py::{name.split('[', 1)[0]}"
        outcome = _outcome(case)
        previous = results.get(node)
        if previous is None or _ORDER.index(outcome) < _ORDER.index(previous):
            results[node] = outcome
    return results


def _outcome(case: ET.Element) -> str:
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        if case.find(tag) is not None:
            return outcome
    return "passed"
