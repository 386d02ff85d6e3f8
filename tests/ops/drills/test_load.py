"""Load-result arithmetic: percentiles by nearest rank, failures by kind."""

from __future__ import annotations

import httpx

from healthstack.ops.drills.fhir import answer_reason
from healthstack.ops.drills.load import LoadResult, Sample


def test_percentiles_and_failures() -> None:
    result = LoadResult([Sample("read", 0, i / 1000, None) for i in range(1, 101)])
    result.samples.append(Sample("create", 0, 0.5, "http:503"))
    assert result.total == 101
    assert result.percentile(50) == 50
    assert result.percentile(100) == 500
    assert result.failures == {"http:503": 1}
    assert result.summary()["by_operation"] == {"read": 100, "create": 1}


def test_a_failure_names_who_refused_it() -> None:
    """A 503 from the service (database) and one from the proxy (no server) need different fixes."""
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "transient",
                          "diagnostics": "database unavailable; retry"}]}  # fmt: skip
    service = httpx.Response(503, json=outcome)
    proxy = httpx.Response(503, text="<html><body><h1>503 Service Unavailable</h1>\n"
                           "No server is available to handle this request.\n</body></html>")  # fmt: skip
    assert answer_reason(service) == "database unavailable; retry"
    assert answer_reason(proxy).endswith("No server is available to handle this request.")
    assert answer_reason(httpx.Response(502)) == "(empty body)"
    assert answer_reason(httpx.Response(500, json={"issue": {}})) == '{"issue":{}}'  # no crash
    result = LoadResult([Sample("create", 0, 0.5, "http:503", answer_reason(service))])
    assert result.summary()["failure_reasons"] == {"http:503: database unavailable; retry": 1}
