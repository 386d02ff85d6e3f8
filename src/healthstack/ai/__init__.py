"""The AI provider: an OpenAI-compatible chat completions client behind the egress allow-list,
with its settings, retries, circuit breaker and daily token budget (docs/ai.md). No PHI here:
callers hand it de-identified payloads only (``healthstack.deid``)."""
