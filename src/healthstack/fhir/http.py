"""HTTP helpers of the FHIR API: request parsing (ids, types, bodies, Prefer) and response shapes.

Kept apart from the routing in :mod:`healthstack.fhir.api` so that handler modules share one
definition of each (and the router module stays small).
"""

from __future__ import annotations

import email.utils
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from healthstack.core.dates import http_date, instant_text
from healthstack.core.outcome import FHIR_JSON, FhirError
from healthstack.fhir import ops
from healthstack.fhir.shaping import Shape
from healthstack.fhir.store import Version
from healthstack.fhir.validate import ID_RE
from healthstack.service.db import unavailable

JSON_TYPES = ("application/fhir+json", "application/json")


CONFLICTS = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


def database_error(error: Exception) -> FhirError:
    if unavailable(error):
        return FhirError(503, "transient", "database unavailable; retry")
    if isinstance(error, CONFLICTS):
        return FhirError(409, "conflict", "concurrent change; retry")
    return FhirError(500, "exception", "internal database error")


# -- request/response helpers ---------------------------------------------------------------------------
def path_id(request: Request) -> str:
    """The URL's id, checked against the FHIR id pattern before anything else uses it."""
    rid: str = request.path_params["id"]
    if not ID_RE.fullmatch(rid):
        raise FhirError(400, "invalid", "the URL's id is not a FHIR id ([A-Za-z0-9-.]{1,64})")
    return rid


def path_type(request: Request) -> str:
    rtype: str = request.path_params.get("rtype", "Observation")
    ops.check_type(rtype)
    return rtype


# Representation switches every interaction accepts (R4 3.1.0.1.10): checked here, then dropped.
FORMATS = frozenset({"json", "application/json", "application/fhir+json", "application/json+fhir",
                     "xml", "application/xml", "application/fhir+xml", "text/xml",
                     "application/xml+fhir"})  # fmt: skip


def query_params(request: Request) -> list[tuple[str, str]]:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    return representation(parse_qsl(raw, keep_blank_values=True))


def representation(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Validate and remove ``_format`` (JSON or XML: anything else is 406) and ``_pretty``."""
    out = []
    for name, value in params:
        if name == "_format":
            if value.split(";")[0].strip() not in FORMATS:
                raise FhirError(
                    406, "not-supported", "_format: this server produces FHIR JSON or FHIR XML"
                )
        elif name == "_pretty":
            if value not in ("true", "false"):
                raise FhirError(400, "invalid", "_pretty: expected true or false")
        else:
            out.append((name, value))
    return out


def header(request: Request, name: bytes) -> str | None:
    """A request header's first value, as ``request.headers.get`` gives it (ASGI header names are
    lower-case), without building the Headers object: the read path asks for three."""
    for key, value in request.scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def negotiate(request: Request) -> None:
    """406 when ``Accept`` allows nothing this server produces (FHIR JSON or XML)."""
    accept = header(request, b"accept")
    if not accept:
        return
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in ("*/*", "application/*", *FORMATS):
            return
    raise FhirError(
        406, "not-supported", "this server produces application/fhir+json or application/fhir+xml"
    )


async def form_params(request: Request) -> list[tuple[str, str]]:
    """``POST [type]/_search``: the form body's parameters, then the URL's (R4 3.1.0.8)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FhirError(415, "not-supported", "send application/x-www-form-urlencoded")
    try:
        body = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise FhirError(400, "invalid", "the form body is not UTF-8") from None
    return representation(parse_qsl(body, keep_blank_values=True)) + query_params(request)


def not_modified(request: Request, version: Version) -> bool:
    """Conditional read: ``If-None-Match`` (the ETag) wins over ``If-Modified-Since``."""
    etags = header(request, b"if-none-match")
    if etags is not None:
        wanted = {t.strip().removeprefix("W/") for t in etags.split(",")}
        return "*" in wanted or version.etag.removeprefix("W/") in wanted
    since = header(request, b"if-modified-since")
    if since is None:
        return False
    try:
        moment = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # an unparseable date is ignored, as RFC 9110 asks
    if moment.tzinfo is None:
        return False
    return version.last_updated.replace(microsecond=0) <= moment


async def json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise FhirError(415, "not-supported", "send application/fhir+json")
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise FhirError(400, "structure", "the body is not valid JSON") from None


def prefer(request: Request, name: str = "return") -> str:
    """A ``Prefer`` header token's value (``return`` by default: representation)."""
    for part in request.headers.get("prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return "representation" if name == "return" else "strict"


def resource_response(
    version: Version, status: int, preference: str = "representation", base: str | None = None
) -> Response:
    headers = {"ETag": version.etag, "Last-Modified": http_date(version.last_updated)}
    if base is not None:
        headers["Location"] = (
            f"{base}/{version.resource_type}/{version.id}/_history/{version.version}"
        )
    body = b"" if preference == "minimal" else (version.body or b"")
    return Response(
        body, status_code=status, headers=headers, media_type=FHIR_JSON if body else None
    )


def bundle_entry(
    base: str,
    version: Version,
    search_mode: dict[str, str] | None = None,
    shape: Shape | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": f"{base}/{version.resource_type}/{version.id}"}
    if version.body is not None:
        body = version.body if shape is None else shape.subset(version.resource_type, version.body)
        entry["resource"] = orjson.Fragment(body)
    if search_mode:
        entry["search"] = search_mode
    return entry


def history_bundle(
    base: str, versions: list[Version], links: list[dict[str, str]], total: int
) -> dict[str, Any]:
    entries = []
    for version in versions:
        entry = bundle_entry(base, version)
        method = "DELETE" if version.deleted else ("POST" if version.version == 1 else "PUT")
        url = f"{version.resource_type}/{version.id}" if method != "POST" else version.resource_type
        entry["request"] = {"method": method, "url": url}
        entry["response"] = {
            "status": "204" if version.deleted else ("201" if method == "POST" else "200"),
            "etag": version.etag,
            "lastModified": instant_text(version.last_updated),
        }
        entries.append(entry)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "total": total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return bundle


class BaseAlias:
    """``POST /api/fhir`` (no trailing slash: where FHIR clients send Bundles) without a 307.

    Mounted next to the ``/api/fhir`` Mount by healthstack/app.py; presents the request to the FHIR
    app exactly as the Mount would present ``POST /api/fhir/``. A class, not a function, so
    Starlette's Route passes the raw ASGI scope through.
    """

    def __init__(self, app: ASGIApp, prefix: str = "/api/fhir") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        child = {
            **scope,
            "path": scope["path"] + "/",
            "root_path": root + self.prefix,
            "app_root_path": scope.get("app_root_path", root),
        }
        await self.app(child, receive, send)
