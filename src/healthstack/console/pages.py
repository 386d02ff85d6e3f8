"""HTML for the console: one layout, every value escaped, no scripts, one inline stylesheet.

Colours meet WCAG 2.1 AA (4.5:1 for text; ``test_console_colours_meet_wcag_aa`` computes them),
every form control has a ``<label>``, focus is always visible, and the pages work without
JavaScript (there is none). The stylesheet is allowed by its hash in the CSP, nothing else is.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from html import escape

# Foreground/background pairs used below; the test checks each pair's contrast ratio.
COLOURS = {"text": ("#1a1a1a", "#ffffff"), "link": ("#0a4f9e", "#ffffff"),
           "header": ("#ffffff", "#123a63"), "error": ("#8f0000", "#fff0f0"),
           "flag": ("#7a3b00", "#fff4e0"), "button": ("#ffffff", "#0a4f9e"),
           "th": ("#1a1a1a", "#e8eef5")}  # fmt: skip
STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#ffffff;margin:0}"
    "header{background:#123a63;color:#ffffff;padding:.5rem 1rem}header a{color:#ffffff;margin-right:1rem}"
    "main{padding:1rem}a{color:#0a4f9e}table{border-collapse:collapse;width:100%}"
    "th,td{border:1px solid #767676;padding:.3rem;text-align:left;vertical-align:top}"
    "th{background:#e8eef5;color:#1a1a1a}.error{background:#fff0f0;color:#8f0000;padding:.5rem;"
    "border:2px solid #8f0000}.flag{background:#fff4e0;color:#7a3b00;font-weight:bold}"
    "label{display:inline-block;margin:.2rem .4rem .2rem 0}input,select,textarea{font:inherit}"
    "input,select{margin-right:1.2rem}"
    "button{font:inherit;background:#0a4f9e;color:#ffffff;border:0;padding:.3rem .8rem}"
    ":focus{outline:3px solid #c75000;outline-offset:2px}.inline{display:inline}"
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
NAV = (("/console/", "Trail"), ("/console/break-glass", "Break-glass review"),
       ("/console/disclosures", "Disclosures"), ("/console/status", "Status"))  # fmt: skip


def layout(title: str, body: str, *, nav: bool = True, csrf: str | None = None) -> str:
    links = "".join(f'<a href="{h}">{escape(t)}</a>' for h, t in NAV) if nav else ""
    logout = (f'<form class="inline" method="post" action="/console/logout">'
              f'{hidden_csrf(csrf)}<button type="submit">Log out</button></form>'
              if nav and csrf else "")  # fmt: skip
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>'
            f"{escape(title)} - healthstack audit console</title><style>{STYLE}</style></head>"
            f'<body><header><nav aria-label="Console">{links}{logout}</nav></header>'
            f"<main><h1>{escape(title)}</h1>{body}</main></body></html>")  # fmt: skip


def hidden_csrf(csrf: str | None) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">' if csrf else ""


def error_page(status: int, message: str) -> str:
    body = f'<p class="error" role="alert">{escape(message)}</p>'
    if status == 401:
        body += '<p><a href="/console/login">Log in</a></p>'
    return layout(f"Error {status}", body, nav=status not in (401,))


def login_page(message: str | None = None) -> str:
    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return layout("Log in", note + (
        '<form method="post" action="/console/login"><p><label for="token">Auditor access '
        'token</label><br><input id="token" name="token" type="password" size="60" required '
        'autocomplete="off"></p><p><button type="submit">Log in</button></p></form>'
        "<p>The session lasts 15 minutes; the token needs a scope naming AuditEvent.</p>"),
        nav=False)  # fmt: skip


def field(name: str, label: str, value: str, kind: str = "text", size: int = 20) -> str:
    return (f'<label for="f-{name}">{escape(label)}</label><input id="f-{name}" name="{name}" '
            f'type="{kind}" value="{escape(value)}" size="{size}">')  # fmt: skip


def select(name: str, label: str, value: str, options: Iterable[str]) -> str:
    opts = "".join(f'<option value="{escape(o)}"{" selected" if o == value else ""}>'
                   f"{escape(o) or 'any'}</option>" for o in ("", *options))  # fmt: skip
    return f'<label for="f-{name}">{escape(label)}</label><select id="f-{name}" name="{name}">{opts}</select>'


def table(caption: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``rows`` hold already-escaped HTML cells."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")  # fmt: skip
