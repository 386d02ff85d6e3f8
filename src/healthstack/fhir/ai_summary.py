"""``Patient/[id]/$deidentify`` and ``Patient/[id]/$summarize`` (docs/ai.md).

``$deidentify`` answers the exact chat request ``$summarize`` would send (de-identified, its
sha256, provider and model). ``$summarize`` sends it, after a disclosure audit record per attempt
(COMMON accounting convention), re-identifies the answer here and stores it as an AI-tagged
DocumentReference with a Provenance. No database connection is held while the provider thinks.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from healthstack.ai.budget import Budget, BudgetExceeded
from healthstack.ai.client import ChatClient, ProviderError
from healthstack.ai.settings import AiSettings
from healthstack.core.outcome import FhirError, FhirResponse
from healthstack.deid import UnknownPlaceholder, deidentify, reidentify_text
from healthstack.deid.text import unshift_dates
from healthstack.errors import HealthstackError
from healthstack.fhir import ai_gather, ai_parts, ops
from healthstack.fhir.access import Caller
from healthstack.fhir.http import path_id, query_params, resource_response
from healthstack.security import audit

AI_TAG = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
SUMMARY_TYPE = {
    "coding": [
        {"system": "http://loinc.org", "code": "60591-5", "display": "Patient summary Document"}
    ]
}
STATE_KEY = "ai_summary"


@dataclass
class Prepared:
    bodies: list[bytes]  # one request, or the parts' requests (the final one comes later)
    holds: list[list[int]]  # per body, the indexes into ``read`` of the resources it holds
    shift: int | None  # None: dates were sent as years only
    reid: dict[str, str]
    read: list[tuple[str, str]]


class Summaries:
    """The two operations; one provider client, breaker and budget per process."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self._settings: AiSettings | None = None
        self._client: ChatClient | None = None
        self._budget: Budget | None = None

    @property
    def settings(self) -> AiSettings:
        if self._settings is None:
            try:
                self._settings = AiSettings.from_env(production=self.api.state.settings.production)
            except HealthstackError as error:  # names the variable, never its value
                raise FhirError(
                    503, "exception", f"AI summaries are misconfigured: {error}"
                ) from None
        return self._settings

    def client(self) -> tuple[ChatClient, Budget]:
        if self._client is None or self._budget is None:
            self._client = ChatClient(self.settings, self.api.state.settings.openai_api_key)
            self._budget = Budget(self.settings.daily_tokens)
        return self._client, self._budget

    def routes(self) -> list[Route]:
        g = self.api.guarded
        return [
            Route(
                "/Patient/{id}/$deidentify",
                g(self.preview, "operation", "Patient"),
                methods=["GET"],
            ),
            Route(
                "/Patient/{id}/$summarize",
                g(self.summarize, "operation", "Patient"),
                methods=["POST"],
            ),
        ]

    async def prepare(self, request: Request, caller: Caller, what: str) -> Prepared:
        pid, settings = path_id(request), self.settings
        await ai_gather.authorize(caller, pid, what)  # before parsing: no oracle for strangers
        wanted = ai_gather.parse(settings, pid, query_params(request))
        async with self.api.state.require_pool().acquire() as conn:
            got = await ai_gather.gather(
                self.api.engine.store, caller, conn, wanted, settings.max_resources, what
            )
        if len(got.resources) < 2:
            raise FhirError(
                422,
                "business-rule",
                f"{what}: no resources of the summarised types in the window; nothing was sent",
            )
        shift = None
        if settings.date_mode == "shift":
            shift = (30 + secrets.randbelow(336)) * (1 if secrets.randbelow(2) else -1)
        today = dt.datetime.now(dt.UTC).date()
        done = deidentify(got.resources, shift, today, names_from=got.names_from)
        parts = ai_parts.bodies(settings, done.resources, what)
        bodies, holds = [body for body, _ in parts], [held for _, held in parts]
        return Prepared(bodies, holds, shift, done.reid, got.read)

    async def preview(self, request: Request) -> Response:
        caller = Caller.of(request, self.api.state)
        prepared = await self.prepare(request, caller, "$deidentify")
        settings = self.settings
        await caller.record_detached(
            "operation",
            "success",
            resource_type="Patient",
            resource_id=path_id(request),
            detail=f"$deidentify: preview of {len(prepared.read)} resources, nothing sent",
        )
        return FhirResponse(
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "provider", "valueString": settings.host},
                    {"name": "model", "valueString": settings.model},
                    {"name": "resources", "valueInteger": len(prepared.read)},
                    {"name": "parts", "valueInteger": len(prepared.bodies)},
                    *(
                        p
                        for body in prepared.bodies
                        for p in (
                            {"name": "sha256", "valueString": hashlib.sha256(body).hexdigest()},
                            {"name": "payload", "valueString": body.decode()},
                        )
                    ),
                ],
            }
        )

    async def summarize(self, request: Request) -> Response:
        caller, pid = Caller.of(request, self.api.state), path_id(request)
        prepared = await self.prepare(request, caller, "$summarize")
        for rtype in ("DocumentReference", "Provenance"):  # storable, or nothing is sent
            await caller.authorize(rtype, "create", detail="$summarize")
        parts = len(prepared.bodies)
        texts = []
        for number, body in enumerate(prepared.bodies, 1):
            label = "whole" if parts == 1 else f"part {number} of {parts}"
            held = [prepared.read[i] for i in prepared.holds[number - 1]]
            texts.append(await self.call(caller, pid, held, body, label))
        if parts > 1:
            for part in texts:  # a forged placeholder is refused before it travels further
                self.reidentify(part, prepared)
            final = ai_parts.combine_body(self.settings, texts)
            if len(final) > self.settings.max_payload_bytes:
                raise FhirError(
                    502,
                    "exception",
                    f"$summarize: the {parts} part summaries together are over "
                    "AI_MAX_PAYLOAD_BYTES; nothing stored",
                )
            label = f"final of {parts} parts"
            texts = [await self.call(caller, pid, prepared.read, final, label)]
        text = self.reidentify(texts[0], prepared)
        text = unshift_dates(text, prepared.shift)
        async with self.api.state.require_pool().acquire() as conn, conn.transaction():
            _, document = await ops.create(
                self.api.engine,
                caller,
                conn,
                "DocumentReference",
                summary_document(pid, text, self.settings, parts),
            )
            await ops.create(
                self.api.engine,
                caller,
                conn,
                "Provenance",
                provenance(document.id, caller, prepared, self.settings),
            )
        return resource_response(document, 201, base=self.api.base(request))

    async def call(
        self, caller: Caller, pid: str, held: list[tuple[str, str]], body: bytes, label: str
    ) -> str:
        """One provider request (within the budget), disclosed per attempt; its answer's text."""
        client, budget = self.client()
        estimate = len(body) // 3 + self.settings.max_answer_tokens
        pool = self.api.state.require_pool()
        try:
            async with pool.acquire() as conn:
                await budget.reserve(conn, estimate)
        except BudgetExceeded:
            raise FhirError(
                429,
                "throttled",
                "$summarize: today's AI token budget "
                "(AI_DAILY_TOKEN_BUDGET) is spent; nothing more was sent",
            ) from None
        digest = hashlib.sha256(body).hexdigest()

        async def disclose(attempt: int) -> None:
            await caller.record_detached(
                "disclosure",
                "success",
                resource_type="Patient",
                resource_id=pid,
                query=self.disclosure(held, digest, label, attempt),
                detail=f"de-identified record ({label}) sent to the AI provider for a summary",
            )

        try:
            answer = await client.complete(body, disclose)
        except ProviderError as error:
            async with pool.acquire() as conn:
                await budget.settle(conn, estimate, 1)  # a failed call costs (almost) nothing
            raise FhirError(error.status, error.code, f"$summarize: {error.message}") from None
        async with pool.acquire() as conn:
            await budget.settle(conn, estimate, answer.tokens)
        return answer.text

    @staticmethod
    def reidentify(text: str, prepared: Prepared) -> str:
        try:
            return reidentify_text(text, prepared.reid)
        except UnknownPlaceholder:
            raise FhirError(
                502,
                "exception",
                "$summarize: the AI provider's answer holds a "
                "placeholder it was not given; refused, nothing stored",
            ) from None

    def disclosure(
        self, held: list[tuple[str, str]], digest: str, label: str, attempt: int
    ) -> dict[str, Any]:
        """The accounting record's non-PHI details; client-chosen ids only as keyed digests."""
        ids = [f"{t}/{i}" if audit.known_id(t, i) else audit.Withheld(f"{t}/{i}") for t, i in held]
        return {
            "kind": "ai-summary",
            "provider": self.settings.host,
            "model": self.settings.model,
            "sha256": digest,
            "part": label,
            "resources": ids,
            "attempt": str(attempt),
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def summary_document(pid: str, text: str, settings: AiSettings, parts: int) -> dict[str, Any]:
    if parts > 1:  # said in the document itself: the reader knows it is a summary of summaries
        text = f"{text}\n\n_Combined from {parts} part summaries._"
    combined = f"; combined from {parts} part summaries" if parts > 1 else ""
    return {
        "resourceType": "DocumentReference",
        "meta": {"tag": [AI_TAG]},
        "status": "current",
        "docStatus": "preliminary",
        "type": SUMMARY_TYPE,
        "subject": {"reference": f"Patient/{pid}"},
        "date": _now(),
        "description": f"AI-generated summary ({settings.model} at {settings.host}){combined}; "
        "review before clinical use",
        "content": [
            {
                "attachment": {
                    "contentType": "text/markdown",
                    "data": base64.b64encode(text.encode()).decode(),
                    "title": "AI-generated summary",
                }
            }
        ],
    }


def provenance(
    doc_id: str, caller: Caller, prepared: Prepared, settings: AiSettings
) -> dict[str, Any]:
    participant = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
    return {
        "resourceType": "Provenance",
        "target": [{"reference": f"DocumentReference/{doc_id}"}],
        "recorded": _now(),
        "agent": [
            {
                "type": {"coding": [{"system": participant, "code": "assembler"}]},
                "who": {"display": f"AI model {settings.model} at {settings.host}"},
            },
            {
                "type": {"coding": [{"system": participant, "code": "enterer"}]},
                "who": {"display": f"requested by {caller.principal.subject}"},
            },
        ],
        "entity": [{"role": "source", "what": {"reference": f"{t}/{i}"}} for t, i in prepared.read],
    }
