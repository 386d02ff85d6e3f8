"""Load-result arithmetic: percentiles by nearest rank, failures by kind."""

from __future__ import annotations

from healthstack.ops.drills.load import LoadResult, Sample


def test_percentiles_and_failures() -> None:
    result = LoadResult([Sample("read", 0, i / 1000, None) for i in range(1, 101)])
    result.samples.append(Sample("create", 0, 0.5, "http:503"))
    assert result.total == 101
    assert result.percentile(50) == 50
    assert result.percentile(100) == 500
    assert result.failures == {"http:503": 1}
    assert result.summary()["by_operation"] == {"read": 100, "create": 1}
