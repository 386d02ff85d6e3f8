"""HS-CO-006: attempts x perTryTimeout fit inside the route timeout."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, seconds
from healthstack.check.policies.mesh import http_routes


def evaluate(ctx: Context) -> Iterator[Violation]:
    for route in http_routes(ctx.inv):
        retries = route.http.get("retries") or {}
        attempts = int(retries.get("attempts", 0) or 0)
        per_try, timeout = seconds(retries.get("perTryTimeout")), seconds(route.http.get("timeout"))
        if attempts <= 0 or per_try is None or timeout is None:
            continue
        # The first try plus `attempts` retries may all run to perTryTimeout.
        total = (attempts + 1) * per_try
        if total > timeout:
            yield Violation(
                route.vs,
                f"{route.label}: (1 + {attempts} retries) x perTryTimeout "
                f"{per_try:g}s = {total:g}s exceeds timeout {timeout:g}s",
            )


CHECK = Check(
    id="HS-CO-006",
    title="Retry budget fits the route timeout",
    severity=Severity.LOW,
    scope=("VirtualService",),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SC-5"),
    remediation="Choose attempts and perTryTimeout so that (attempts + 1) x perTryTimeout <= "
    "timeout.",
    evaluate=evaluate,
    family="consistency",
)
