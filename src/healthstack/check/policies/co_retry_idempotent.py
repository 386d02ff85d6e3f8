"""HS-CO-007: retries are not made on conditions where a non-idempotent write may have run."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.policies.mesh import http_routes

# Istio's default retryOn when unset: retries after the upstream may have processed the request.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
# Conditions met after the upstream may have seen (and acted on) the request. gRPC's
# unavailable/cancelled are excluded: by gRPC convention the call was not processed.
UNSAFE = {
    "5xx",
    "gateway-error",
    "reset",
    "retriable-status-codes",
    "retriable-4xx",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


def _idempotent_only(match: list[dict[str, object]] | None) -> bool:
    """True when every match clause restricts the route to idempotent methods."""
    if not match:
        return False
    for clause in match:
        method = clause.get("method") if isinstance(clause, dict) else None
        values = (
            {str(v).upper() for v in (method or {}).values()} if isinstance(method, dict) else set()
        )
        if not values or not values <= SAFE_METHODS:
            return False
    return True


def evaluate(ctx: Context) -> Iterator[Violation]:
    for route in http_routes(ctx.inv):
        retries = route.http.get("retries")
        if not retries or int(retries.get("attempts", 0) or 0) == 0:
            continue
        conditions = set(str(retries.get("retryOn") or DEFAULT_RETRY_ON).split(","))
        risky = sorted(conditions & UNSAFE)
        if risky and not _idempotent_only(route.http.get("match")):
            yield Violation(
                route.vs,
                f"{route.label} retries on {','.join(risky)} for all "
                "methods: POST/PATCH may be applied twice",
            )


CHECK = Check(
    id="HS-CO-007",
    title="No retries of non-idempotent requests",
    severity=Severity.HIGH,
    scope=("VirtualService",),
    references=("HIPAA 164.312(c)(1)", "NIST SP 800-53 SI-10"),
    remediation="Set retries.retryOn to connect-failure,refused-stream only, or restrict the "
    "retried route to GET/HEAD/PUT/DELETE with a method match.",
    evaluate=evaluate,
    family="consistency",
)
