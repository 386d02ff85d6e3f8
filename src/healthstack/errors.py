"""The one error type for expected failures.

Commands raise :class:`HealthstackError` for anything a user can fix (bad configuration, a missing
file, a malformed manifest); ``healthstack.cli`` prints its message and exits with its code. Anything
else is a bug and keeps its traceback.
"""


class HealthstackError(Exception):
    """An expected failure with a message fit to show a user (never containing secrets or PHI)."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
