"""``application/fhir+xml`` for every FHIR interaction, in one ASGI layer around the FHIR router.

Requests: an XML body (``application/fhir+xml``, ``application/xml``, ``text/xml``) is converted
to FHIR JSON before routing, so every handler, the validator, authorization and audit see exactly
what a JSON client would have sent. Responses: when ``_format`` or ``Accept`` asks for XML, a
FHIR JSON answer (resources, Bundles, OperationOutcomes, the CapabilityStatement) is converted on
the way out. Anything else (ndjson, binary, 304s) passes through untouched.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthstack.core.outcome import FhirError
from healthstack.fhir.xml import from_xml, to_xml

log = logging.getLogger("healthstack.fhir")

FHIR_XML = "application/fhir+xml"
XML_TYPES = frozenset({FHIR_XML, "application/xml", "text/xml", "xml", "application/xml+fhir"})
JSON_TYPES = frozenset(
    {"application/fhir+json", "application/json", "json", "application/json+fhir"}
)


def _media(value: str) -> str:
    return value.split(";")[0].strip().lower()


def wants_xml(scope: Scope) -> bool:
    """``_format`` wins; else ``Accept``'s XML or JSON type of highest ``q`` (the first on ties)."""
    raw_query: bytes = scope.get("query_string", b"")
    # The hot path (no "format", even percent-escaped) skips the parse: search values are
    # often escaped (``system%7Ccode``), and unescaping is cheaper than parsing.
    if b"format" in raw_query or (b"%" in raw_query and b"format" in unquote_to_bytes(raw_query)):
        for name, value in parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True):
            if name == "_format":
                return _media(value) in XML_TYPES
    accept = _header(scope, b"accept")
    if b"xml" not in accept.lower():  # nothing to rank: JSON
        return False
    ranked = sorted(_accepted(accept.decode("latin-1")), key=lambda m: -m[0])
    for _, media in ranked:
        if media in XML_TYPES:
            return True
        if media in JSON_TYPES:
            return False
    return False


def _header(scope: Scope, name: bytes) -> bytes:
    """One request header's value (b"" when absent), without copying the header list."""
    return next((value for key, value in scope.get("headers", []) if key == name), b"")


def _accepted(accept: str) -> list[tuple[float, str]]:
    """``Accept``'s media types with their ``q`` (1 when absent or unreadable), in header order."""
    out = []
    for item in accept.split(","):
        media, *params = item.split(";")
        quality = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 1.0
        out.append((quality, media.strip().lower()))
    return out


class XmlLayer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        xml_out = wants_xml(scope)
        if xml_out:
            send = _converting(send)
        content_type = _header(scope, b"content-type").decode("latin-1")
        if _media(content_type) in XML_TYPES and scope["method"] in ("POST", "PUT", "PATCH"):
            body = await _read(receive)
            try:
                resource = from_xml(body)
            except FhirError as error:
                await error.response()(scope, receive, send)
                return
            json_body = orjson.dumps(resource)
            headers = [(k, v) for k, v in scope.get("headers", [])
                       if k not in (b"content-type", b"content-length")]  # fmt: skip
            headers += [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(json_body)).encode()),
            ]
            scope = {**scope, "headers": headers}
            receive = _replay(json_body)
        await self.app(scope, receive, send)


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _converting(send: Send) -> Send:
    """Buffer a FHIR JSON answer and send it as FHIR XML; pass anything else through."""
    start: dict[str, Any] | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            sent = dict(message.get("headers", []))
            if _media(sent.get(b"content-type", b"").decode("latin-1")) in JSON_TYPES:
                start = dict(message)
                return
            await send(message)
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        original = b"".join(chunks)
        try:
            body = to_xml(orjson.loads(original)) if original else original
        except Exception as error:  # a bug here must not drop the answer: send it as JSON
            log.error("cannot render a response as XML", extra={"error": type(error).__name__})
            await send(start)
            await send({"type": "http.response.body", "body": original, "more_body": False})
            return
        headers = [
            (k, v)
            for k, v in start.get("headers", [])
            if k not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", f"{FHIR_XML}; charset=utf-8".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped
