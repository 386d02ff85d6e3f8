"""The chat requests ``$summarize`` sends: one for a record under ``AI_MAX_PAYLOAD_BYTES``; for a
larger one, up to ``AI_MAX_PARTS`` parts (each under the limit) and one final request combining
the parts' summaries (docs/ai.md). Pure functions over the already de-identified resources."""

from __future__ import annotations

from typing import Any

import orjson

from healthstack.ai.settings import AiSettings
from healthstack.core.outcome import FhirError

INSTRUCTIONS = (
    "You summarise a patient's recent clinical record for a clinician. The record is FHIR JSON "
    "and de-identified: people, places, ids and contact details are placeholders such as "
    "[[NAME-1]] or [[RES-2]], and dates are {dates}. Write a concise summary (problems, "
    "medications, recent results, encounters). Refer to things only by the placeholders you were "
    "given, copied exactly; never invent a placeholder or guess an identity."
)
PART = " This is one part of a longer record: summarise this part only."
COMBINE = (
    "You combine summaries of the parts of one patient's de-identified clinical record into one "
    "concise summary for a clinician. Refer to things only by the placeholders you were given, "
    "copied exactly; never invent a placeholder or guess an identity."
)
DATES = {"year": "reduced to their year", "shift": "shifted"}


def chat_body(settings: AiSettings, resources: list[dict[str, Any]], part: bool = False) -> bytes:
    record = orjson.dumps(resources).decode()
    system = INSTRUCTIONS.format(dates=DATES[settings.date_mode]) + (PART if part else "")
    return _body(settings, system, f"De-identified record (FHIR JSON):\n{record}")


def combine_body(settings: AiSettings, summaries: list[str]) -> bytes:
    parts = "\n\n".join(f"Part {n}:\n{text}" for n, text in enumerate(summaries, 1))
    return _body(settings, COMBINE, f"Summaries of the record's {len(summaries)} parts:\n{parts}")


def _body(settings: AiSettings, system: str, user: str) -> bytes:
    return orjson.dumps(
        {
            "model": settings.model,
            "temperature": 0,
            "max_tokens": settings.max_answer_tokens,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        }
    )


def bodies(
    settings: AiSettings, resources: list[dict[str, Any]], what: str
) -> list[tuple[bytes, list[int]]]:
    """One body when the record fits, else the parts' bodies, each with the indexes of the
    resources it holds: the Patient (first) in every part, the rest by resource type then time,
    packed in order. 413 when a resource does not fit in a part alone, or when more than
    ``AI_MAX_PARTS`` parts would be needed: nothing is sent."""
    whole = chat_body(settings, resources)
    limit = settings.max_payload_bytes
    if len(whole) <= limit:
        return [(whole, list(range(len(resources))))]
    rest = sorted(range(1, len(resources)), key=lambda i: _order(resources[i]))
    groups: list[list[int]] = []
    size = room = limit - len(chat_body(settings, resources[:1], part=True))
    for index in rest:
        cost = len(orjson.dumps(orjson.dumps(resources[index]).decode())) - 1  # escaped, a comma
        if cost > room:
            raise _too_big(what, f"one resource alone is over AI_MAX_PAYLOAD_BYTES ({limit})")
        if not groups or cost > size:
            groups.append([0])
            size = room
        groups[-1].append(index)
        size -= cost
    if len(groups) > settings.max_parts:
        raise _too_big(
            what,
            f"it needs {len(groups)} parts under AI_MAX_PAYLOAD_BYTES ({limit}), over "
            f"AI_MAX_PARTS ({settings.max_parts})",
        )
    out = [(chat_body(settings, [resources[i] for i in g], part=True), g) for g in groups]
    if any(len(body) > limit for body, _ in out):  # the estimate is exact; this keeps it honest
        raise _too_big(what, f"a part is over AI_MAX_PAYLOAD_BYTES ({limit})")
    return out


def _order(resource: dict[str, Any]) -> tuple[str, str]:
    when = next(
        (
            str(resource[k])
            for k in ("effectiveDateTime", "onsetDateTime", "recordedDate", "authoredOn", "date")
            if k in resource
        ),
        str(resource.get("period", {}).get("start", ""))
        if isinstance(resource.get("period"), dict)
        else "",
    )
    return str(resource.get("resourceType", "")), when


def _too_big(what: str, why: str) -> FhirError:
    return FhirError(
        413,
        "too-costly",
        f"{what}: the de-identified record is too large to summarise: {why}; "
        "narrow it with _type or _since; nothing was sent",
    )
