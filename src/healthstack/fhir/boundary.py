"""The FHIR app's last line: every failure inside it answers an OperationOutcome.

A routing miss (404), a wrong method (405) or an exception nobody expected becomes an
OperationOutcome before the first byte is sent. It passes through the authentication layer's
audited ``send``, so the safety net there writes its audit record (issue 12 items 8 and 19):
no plain-text 500, no dropped connection, no unaudited failure.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthstack.core.outcome import UNEXPECTED, http_error_response, operation_outcome
from healthstack.security import audit

log = logging.getLogger("healthstack.fhir")


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except HTTPException as error:
            if started:
                raise
            await http_error_response(error.status_code, error.headers)(scope, receive, send)
        except Exception as error:
            # The type only: messages can quote values (asyncpg DETAIL lines, ValueErrors).
            log.error("unexpected error in the FHIR API", extra={"error": type(error).__name__})
            if started:
                raise
            # Records written before the failure may sit in a rolled-back transaction: have the
            # authentication layer's safety net write one for this answer in any case.
            box = audit.written_var.get()
            if box is not None:
                box.count = 0
            await operation_outcome(500, "exception", UNEXPECTED)(scope, receive, send)
