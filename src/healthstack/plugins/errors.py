"""The one failure type of a plugin call, convertible to a FHIR OperationOutcome.

Messages name the plugin and what went wrong in its ABI use; they never include the resources
passed to the plugin or its output, because both may hold PHI.
"""

from __future__ import annotations

from typing import Any

# code -> (OperationOutcome issue type, HTTP status the API should answer with).
# A plugin failure is the server's problem, not the client's, except for bad invocation input.
CODES: dict[str, tuple[str, int]] = {
    "timeout": ("timeout", 504),
    "out-of-fuel": ("too-costly", 500),
    "memory-limit": ("too-costly", 500),
    "trap": ("exception", 500),
    "compile-error": ("invalid", 500),
    "missing-export": ("not-supported", 500),
    "abi-version": ("not-supported", 500),
    "import-denied": ("security", 500),
    "invalid-output": ("invalid", 500),
    "output-too-large": ("too-long", 500),
    "input-too-large": ("too-long", 413),
    "not-found": ("not-found", 404),
    "disabled": ("not-supported", 409),
}


class PluginError(Exception):
    """A plugin call failed; ``code`` is one of :data:`CODES`, ``message`` is safe to show."""

    def __init__(self, code: str, message: str, *, plugin: str = "") -> None:
        if code not in CODES:
            raise ValueError(f"unknown plugin error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.plugin = plugin

    @property
    def http_status(self) -> int:
        return CODES[self.code][1]

    def with_plugin(self, plugin: str) -> PluginError:
        """The same error, labelled with the plugin it came from."""
        return PluginError(self.code, self.message, plugin=plugin)

    def to_issue(self) -> dict[str, Any]:
        label = f"plugin {self.plugin!r}: " if self.plugin else ""
        return {
            "severity": "error",
            "code": CODES[self.code][0],
            "details": {"coding": [{"system": "urn:healthstack:plugin-error", "code": self.code}]},
            "diagnostics": f"{label}{self.message}",
        }

    def to_operation_outcome(self) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": [self.to_issue()]}
