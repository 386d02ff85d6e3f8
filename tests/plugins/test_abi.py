"""ABI v1 encoding and the shape checks on guest output."""

from __future__ import annotations

import pytest

from healthstack.plugins import PluginError
from healthstack.plugins.abi import decode_output, split_result
from healthstack.plugins.errors import CODES


def test_split_result_handles_negative_i64() -> None:
    # A pointer with the top bit set comes back from wasmtime as a negative Python int.
    assert split_result((0x8000_0010 << 32 | 5) - (1 << 64)) == (0x8000_0010, 5)
    assert split_result(16 << 32 | 75) == (16, 75)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"issues": [1]}', r"issues\[0\] must be an object"),
        (b'{"issues": [{"severity": "bad", "code": "x"}]}', r"issues\[0\]\.severity"),
        (b'{"issues": [{"severity": "error"}]}', r"issues\[0\]\.code"),
        (
            b'{"issues": [{"severity": "error", "code": "x", "diagnostics": 3}]}',
            r"diagnostics must be a string",
        ),
        (
            b'{"issues": [{"severity": "error", "code": "x", "expression": "a"}]}',
            r"expression must be an array",
        ),
        (b'{"issues": {}}', r"'issues' array"),
        (b"[]", r"'issues' array"),
    ],
)
def test_bad_issues_are_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(PluginError, match=message) as info:
        decode_output("validate", raw)
    assert info.value.code == "invalid-output"


def test_good_issue_passes() -> None:
    issue = {
        "severity": "warning",
        "code": "value",
        "diagnostics": "odd",
        "expression": ["Observation.value"],
    }
    assert decode_output(
        "validate", b'{"issues": [%s]}' % str(issue).replace("'", '"').encode()
    ) == [issue]


def test_every_code_maps_to_an_outcome() -> None:
    for code in CODES:
        outcome = PluginError(code, "m", plugin="p@1").to_operation_outcome()
        assert outcome["issue"][0]["diagnostics"] == "plugin 'p@1': m"
    with pytest.raises(ValueError, match="unknown plugin error code"):
        PluginError("nope", "m")
