"""``/console/status``: the trail's chain heads at a glance, for an auditor.

A quick check, not a verification: each chain's head (``audit_chain``) must be the hash of its last
record (or the genesis hash when empty), which reads 64 rows. It catches a tail cut without the
head, or a head rewritten alone; a chain recomputed whole passes here and is caught only by
``healthstack audit verify --anchor`` (every hash recomputed, signed anchors outside the database,
hourly in the deployment). The page says so.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from healthstack.console import pages
from healthstack.console.session import ConsoleError, authenticate
from healthstack.console.views import csrf_of, record
from healthstack.security.chain import CHAINS, genesis
from healthstack.service.state import ServiceState

HEADS = """SELECT c.chain_id, c.seq, c.head, l.hash, l.recorded_at FROM audit_chain c
LEFT JOIN audit_log l ON l.chain_id = c.chain_id AND l.seq = c.seq ORDER BY c.chain_id"""
AWAITING = """SELECT count(*) FROM audit_log l WHERE l.break_glass AND NOT EXISTS
(SELECT 1 FROM audit_review v WHERE v.chain_id = l.chain_id AND v.seq = l.seq)"""


async def status(state: ServiceState, request: Request) -> Response:
    caller = await authenticate(state, request)
    if request.query_params:
        raise ConsoleError(400, "the status page takes no parameters", principal=caller.principal)
    async with state.require_pool().acquire() as conn:
        heads = await conn.fetch(HEADS)
        awaiting = await conn.fetchval(AWAITING)
        await record(conn, state, caller.principal, "read", "chain status")
    broken = [h for h in heads if bytes(h["head"]) != (
        genesis(h["chain_id"]) if h["seq"] == 0 else bytes(h["hash"] or b""))]  # fmt: skip
    newest = max((h["recorded_at"] for h in heads if h["recorded_at"] is not None), default=None)
    good = len(heads) - len(broken)
    summary = (f'<p role="status">{good} of {len(heads)} chain heads match their last record '
               f"(the schema has {CHAINS}); {sum(h['seq'] for h in heads)} records; newest "
               f"{escape(f'{newest:%Y-%m-%d %H:%M:%S} UTC') if newest else 'none'}; "
               f'<a href="/console/break-glass">{awaiting} break-glass use(s) awaiting review</a>.'
               "</p>")  # fmt: skip
    if broken or len(heads) != CHAINS:
        summary += '<p class="error" role="alert">The trail does not look intact: run '
        summary += "<code>healthstack audit verify --anchor</code> now.</p>"
    rows = ([str(h["chain_id"]), str(h["seq"]), "head does not match its last record"]
            for h in broken)  # fmt: skip
    body = summary + (pages.table("Chains whose head does not match", ("Chain", "Head seq",
                                  "Problem"), rows) if broken else "")  # fmt: skip
    body += ("<p>This compares each chain's head with its last record only. Full verification "
             "(every hash, and signed anchors kept outside the database) is <code>healthstack "
             "audit verify --anchor</code>, run hourly by the audit-anchor job.</p>")  # fmt: skip
    return HTMLResponse(pages.layout("Trail status", body, csrf=csrf_of(state, caller)))
