"""What an audit record says (164.312(b)); how it is chained and stored lives in ``audit``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AuditEvent:
    """One PHI interaction or security event. Never put PHI values in any field."""

    interaction: str  # read vread search history create update delete operation login ...
    outcome: str  # "success", "denied", "unauthenticated", "failed" (other 4xx), "error" (5xx)
    subject: str | None  # Principal.subject, None when unauthenticated
    client_id: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    version: int | None = None
    # Search parameter names (and values only for non-PHI parameters such as _count or status).
    query: dict[str, Any] = field(default_factory=dict)
    source_ip: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    break_glass_reason: str | None = None
    detail: str | None = None  # non-PHI reason, e.g. "scope patient/Observation.rs lacks c"
