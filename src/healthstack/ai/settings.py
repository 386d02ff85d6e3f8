"""AI summary settings, from the environment (docs/ai.md lists every variable).

The key is ``Settings.openai_api_key`` (``OPENAI_API_KEY`` or ``OPENAI_API_KEY_FILE``); the rest is
read here so the feature's knobs stay beside it. Errors name the variable, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from healthstack.config import _float, _int
from healthstack.errors import HealthstackError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The hosts deploy/components/istio/serviceentry.yaml lets the pods reach: in production the
# service refuses a base URL elsewhere rather than fail at the mesh on every request.
ALLOWED_HOSTS = frozenset({"api.openai.com"})
DEFAULT_TYPES = (
    "AllergyIntolerance",
    "Condition",
    "DiagnosticReport",
    "Encounter",
    "Immunization",
    "MedicationRequest",
    "Observation",
    "Procedure",
)

DATE_MODES = ("year", "shift")


@dataclass(frozen=True)
class AiSettings:
    base_url: str = DEFAULT_BASE_URL
    model: str = "gpt-4o-mini"
    timeout: float = 30.0  # seconds per attempt (connect, read, write, pool)
    max_retries: int = 2  # after the first attempt, on 429, 500, 502-504 and timeouts
    backoff: float = 0.5  # seconds, doubled per retry (Retry-After honoured up to 10x this)
    breaker_threshold: int = 5  # consecutive failed calls that open the circuit
    breaker_cooldown: float = 60.0  # seconds the open circuit refuses calls
    daily_tokens: int = 200_000  # per process and UTC day; 0 = no call at all
    max_payload_bytes: int = 120_000  # per request: a larger record is summarised in parts
    max_parts: int = 4  # parts (each one request) beyond which a record is refused (413)
    max_answer_tokens: int = 1_000
    max_resources: int = 500
    window_days: int = 365
    types: tuple[str, ...] = DEFAULT_TYPES
    # "year": dates keep only their year (Safe Harbor, 164.514(b)(2)(i)(C)); "shift": one secret
    # shift per request keeps intervals, which needs an Expert Determination (164.514(b)(1)).
    date_mode: str = "year"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, production: bool = False
    ) -> AiSettings:
        env = os.environ if env is None else env
        base_url = (env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HealthstackError("OPENAI_BASE_URL must be an http(s) URL")
        if production and (parts.scheme != "https" or parts.hostname not in ALLOWED_HOSTS):
            raise HealthstackError(
                "OPENAI_BASE_URL must be https on an allow-listed host in production "
                f"({', '.join(sorted(ALLOWED_HOSTS))}; see deploy/components/istio)"
            )
        types = tuple(t for t in (env.get("AI_SUMMARY_TYPES") or "").split(",") if t.strip())
        date_mode = (env.get("AI_DATE_MODE") or cls.date_mode).strip()
        if date_mode not in DATE_MODES:
            raise HealthstackError("AI_DATE_MODE must be one of: " + ", ".join(DATE_MODES))
        return cls(
            base_url=base_url,
            model=env.get("AI_MODEL") or cls.model,
            timeout=_float(env, "AI_TIMEOUT_SECONDS", cls.timeout) or cls.timeout,
            max_retries=_int(env, "AI_MAX_RETRIES", cls.max_retries, maximum=5),
            backoff=_float(env, "AI_RETRY_BACKOFF_SECONDS", cls.backoff),
            breaker_threshold=_int(env, "AI_BREAKER_THRESHOLD", cls.breaker_threshold, minimum=1),
            breaker_cooldown=_float(env, "AI_BREAKER_COOLDOWN_SECONDS", cls.breaker_cooldown),
            daily_tokens=_int(env, "AI_DAILY_TOKEN_BUDGET", cls.daily_tokens),
            max_payload_bytes=_int(
                env, "AI_MAX_PAYLOAD_BYTES", cls.max_payload_bytes, minimum=1024
            ),
            max_parts=_int(env, "AI_MAX_PARTS", cls.max_parts, minimum=1, maximum=20),
            max_answer_tokens=_int(env, "AI_MAX_ANSWER_TOKENS", cls.max_answer_tokens, minimum=16),
            max_resources=_int(env, "AI_MAX_RESOURCES", cls.max_resources, minimum=1, maximum=5000),
            window_days=_int(env, "AI_SUMMARY_WINDOW_DAYS", cls.window_days, minimum=1),
            types=tuple(t.strip() for t in types) or DEFAULT_TYPES,
            date_mode=date_mode,
        )
