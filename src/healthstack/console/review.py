"""Break-glass review (164.308(a)(1)(ii)(D)) and the accounting of disclosures (164.528).

The queue lists break-glass records without a review, reason decrypted for the auditor; a review
(note sealed under the PHI key, bound to its record) and its own audit record commit together,
and a record is reviewed once (a replayed post is 409). The accounting lists, for one patient,
the ``disclosure`` records (Bulk export, AI summary: docs/CONTRACT.md convention) and the
break-glass records that name the patient, as HTML or CSV.
"""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from healthstack.console import filters, pages, pdf
from healthstack.console.session import ConsoleError, authenticate, check_csrf
from healthstack.console.views import csrf_of, form, record
from healthstack.core.crypto import DecryptionError, Keyring
from healthstack.numbers import ascii_int
from healthstack.security import audit, authz
from healthstack.service.state import ServiceState

NOTE_MAX = 1000
QUEUE_LIMIT = 100
ACCOUNTING_LIMIT = 5000
_RESEALED = "LEFT JOIN audit_reason r USING (chain_id, seq)"
QUEUE = f"""SELECT l.chain_id, l.seq, l.content, l.recorded_at, r.key_id, r.ciphertext
FROM audit_log l {_RESEALED} WHERE l.break_glass AND NOT EXISTS (SELECT 1 FROM audit_review v
WHERE v.chain_id = l.chain_id AND v.seq = l.seq)
ORDER BY l.recorded_at DESC, l.chain_id DESC, l.seq DESC LIMIT {QUEUE_LIMIT}"""
REVIEWED = """SELECT v.chain_id, v.seq, v.reviewer, v.note_key, v.note, v.reviewed_at, l.content
FROM audit_review v JOIN audit_log l USING (chain_id, seq) ORDER BY v.reviewed_at DESC LIMIT 50"""
IS_BREAK_GLASS = "SELECT break_glass FROM audit_log WHERE chain_id = $1 AND seq = $2"
INSERT_REVIEW = """INSERT INTO audit_review (chain_id, seq, reviewer, note_key, note)
VALUES ($1, $2, $3, $4, $5)"""


def _keyring(state: ServiceState) -> Keyring:
    keyring = audit.reason_keyring(state)
    if keyring is None:
        raise ConsoleError(503, "the console needs the PHI key (ENCRYPTION_KEY)", outcome="error")
    return keyring


def _reason(keyring: Keyring, row: asyncpg.Record, doc: dict[str, Any]) -> str:
    resealed = (row["key_id"], row["ciphertext"]) if row["ciphertext"] is not None else None
    return audit.open_reason(keyring, doc.get("break_glass_reason") or "", resealed,
                             row["chain_id"], row["seq"])  # fmt: skip


async def queue(state: ServiceState, request: Request) -> Response:
    caller = await authenticate(state, request)
    if request.query_params:
        raise ConsoleError(400, "the review queue takes no parameters")
    keyring = _keyring(state)
    async with state.require_pool().acquire() as conn:
        waiting = await conn.fetch(QUEUE)
        reviewed = await conn.fetch(REVIEWED)
        await record(conn, state, caller.principal, "read", "break-glass review queue")
    csrf = pages.hidden_csrf(csrf_of(state, caller))
    items = [_queue_cells(keyring, row, csrf) for row in waiting]
    done = [_reviewed_cells(keyring, row) for row in reviewed]
    body = pages.table(f"Awaiting review ({len(items)}, newest first, at most {QUEUE_LIMIT})",
                       ("Time (UTC)", "Who", "Access", "Reason given", "Review"), items)  # fmt: skip
    body += pages.table("Reviewed (newest 50)",
                        ("Record", "Who", "Reviewed by", "Reviewed at (UTC)", "Note"), done)  # fmt: skip
    return HTMLResponse(pages.layout("Break-glass review", body, csrf=csrf_of(state, caller)))


def _queue_cells(keyring: Keyring, row: asyncpg.Record, csrf: str) -> list[str]:
    doc = orjson.loads(row["content"])
    rid = f"{row['chain_id']}-{row['seq']}"
    access = f"{doc['interaction']} {doc.get('resource_type') or ''}/{doc.get('resource_id') or ''}"
    review = (f'<form method="post" action="/console/break-glass/{rid}/review">{csrf}'
              f'<label for="note-{rid}">Review note</label><br><textarea id="note-{rid}" '
              f'name="note" rows="2" cols="30" required maxlength="{NOTE_MAX}"></textarea><br>'
              '<button type="submit">Mark reviewed</button></form>')  # fmt: skip
    return [escape(f"{row['recorded_at']:%Y-%m-%d %H:%M:%S}"), escape(doc.get("subject") or ""),
            escape(access) + f"<br><small>record {rid}</small>",
            escape(_reason(keyring, row, doc)), review]  # fmt: skip


def _reviewed_cells(keyring: Keyring, row: asyncpg.Record) -> list[str]:
    doc = orjson.loads(row["content"])
    try:
        note = keyring.decrypt(row["note_key"], bytes(row["note"]),
                               audit.review_note_aad(row["chain_id"], row["seq"])).decode()  # fmt: skip
    except DecryptionError:
        note = f"[encrypted under key {row['note_key']}, which is not configured]"
    return [f"{row['chain_id']}-{row['seq']}", escape(doc.get("subject") or ""),
            escape(row["reviewer"]), escape(f"{row['reviewed_at']:%Y-%m-%d %H:%M:%S}"),
            escape(note)]  # fmt: skip


async def review(state: ServiceState, request: Request) -> Response:
    caller = await authenticate(state, request)
    fields = await form(request)
    check_csrf(state, caller, fields.get("csrf"))
    rid = request.path_params["id"]
    chain_text, _, seq_text = rid.partition("-")
    chain, seq = ascii_int(chain_text, 2**15 - 1), ascii_int(seq_text)
    note = authz.clean_reason(fields.get("note", ""))
    if not 1 <= len(note) <= NOTE_MAX:
        raise ConsoleError(
            400, f"note: write 1 to {NOTE_MAX} characters", principal=caller.principal
        )
    keyring = _keyring(state)
    async with state.require_pool().acquire() as conn:
        flag = (
            await conn.fetchval(IS_BREAK_GLASS, chain, seq)
            if chain is not None and seq is not None
            else None
        )
        if not flag or chain is None or seq is None:
            raise ConsoleError(404, f"no break-glass record {rid[:40]}", principal=caller.principal)
        key_id, blob = keyring.encrypt(note.encode(), audit.review_note_aad(chain, seq))
        try:
            async with conn.transaction():
                await conn.execute(
                    INSERT_REVIEW, chain, seq, caller.principal.subject, key_id, blob
                )
                await record(conn, state, caller.principal, "review", "break-glass use reviewed",
                             resource_id=f"{chain}-{seq}")  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ConsoleError(409, f"record {chain}-{seq} has already been reviewed",
                               principal=caller.principal) from None  # fmt: skip
    return RedirectResponse("/console/break-glass", 303)


ACCOUNTING = f"""SELECT l.chain_id, l.seq, l.content, l.recorded_at, r.key_id, r.ciphertext
FROM audit_log l {_RESEALED} WHERE (l.interaction = 'disclosure' AND l.resource_type = 'Patient'
AND l.resource_id = $1) OR (l.break_glass AND {{patient}})
ORDER BY l.recorded_at DESC, l.chain_id DESC, l.seq DESC LIMIT {ACCOUNTING_LIMIT}"""
CSV_HEADER = ("date_utc", "kind", "recipient", "client", "description", "purpose", "record")


async def disclosures(state: ServiceState, request: Request) -> Response:
    caller = await authenticate(state, request)
    params = dict(request.query_params)
    if set(params) - {"patient", "format"} or len(request.query_params.multi_items()) != len(
        params
    ):
        raise ConsoleError(400, "expected only patient and format", principal=caller.principal)
    fmt = params.get("format", "html")
    if fmt not in ("html", "csv", "pdf"):
        raise ConsoleError(400, "format: expected html, csv or pdf", principal=caller.principal)
    if not params.get("patient"):
        return HTMLResponse(pages.layout("Accounting of disclosures", _patient_form(""),
                                         csrf=csrf_of(state, caller)))  # fmt: skip
    pid = filters.patient_id(params["patient"].strip())
    found = filters.Filters()
    found.arg(pid)
    sql = ACCOUNTING.format(patient=filters.patient_clause(found, pid))
    keyring = _keyring(state)
    async with state.require_pool().acquire() as conn:
        rows = await conn.fetch(sql, *found.args)
        await record(conn, state, caller.principal, "search", f"accounting of disclosures ({fmt})",
                     query={"patient": [pid]})  # fmt: skip
    entries = [_entry(keyring, row) for row in rows]
    if fmt == "csv":
        return _csv(pid, entries)
    if fmt == "pdf":
        title = f"Accounting of disclosures, patient {pid} ({len(entries)}; newest first)"
        return Response(pdf.render(title, [CSV_HEADER, *entries]), media_type="application/pdf",
                        headers={"Content-Disposition":
                                 f'attachment; filename="disclosures-{pid}.pdf"'})  # fmt: skip
    link = "<p>" + " ".join(
        f'<a href="/console/disclosures?patient={pid}&amp;format={kind}">Download {kind.upper()}</a>'
        for kind in ("csv", "pdf")) + "</p>"  # fmt: skip
    body = _patient_form(pid) + (link + pages.table(
        f"Disclosures of patient {pid} ({len(entries)}, newest first)", CSV_HEADER,
        ([escape(c) for c in e] for e in entries)) if entries else
        f'<p role="status">No disclosures are recorded for patient {escape(pid)}.</p>')  # fmt: skip
    return HTMLResponse(
        pages.layout("Accounting of disclosures", body, csrf=csrf_of(state, caller))
    )


def _patient_form(pid: str) -> str:
    return ('<form method="get" action="/console/disclosures"><p>'
            + pages.field("patient", "Patient id", pid, size=40)
            + ' <button type="submit">Show disclosures</button></p></form>')  # fmt: skip


def _entry(keyring: Keyring, row: asyncpg.Record) -> tuple[str, ...]:
    doc = orjson.loads(row["content"])
    query = doc.get("query") or {}
    if doc["interaction"] == "disclosure":
        kind = query.get("kind", "disclosure")
        kind = str(kind[0] if isinstance(kind, list) and kind else kind)  # "x" or ["x"]
        description = orjson.dumps({k: v for k, v in query.items() if k != "kind"}).decode()
        purpose = doc.get("detail") or ""
    else:
        kind = "break-glass"
        description = f"{doc['interaction']} {doc.get('resource_type') or ''}"
        purpose = _reason(keyring, row, doc)
    return (f"{row['recorded_at']:%Y-%m-%d %H:%M:%S}", kind, doc.get("subject") or "",
            doc.get("client_id") or "", description, purpose, f"{row['chain_id']}-{row['seq']}")  # fmt: skip


def _cell(value: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula: prefix it (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(pid: str, entries: list[tuple[str, ...]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows([_cell(c) for c in e] for e in entries)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="disclosures-{pid}.csv"'})  # fmt: skip
