"""The embedded server's one page: who is signing in, which patient (when the app asked for a
patient context and the EHR gave none), and approve or deny. Server-rendered, no script."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize {client}</title></head>
<body><h1>{client} asks for access</h1>
<p>Scopes: <code>{scope}</code></p>
<form method="post" action="authorize">
{hidden}
<label>Signed-in user (FHIR reference) <input name="fhir_user" value="Practitioner/dev-user"></label>
{picker}
<button name="decision" value="approve">Approve</button>
<button name="decision" value="deny">Deny</button>
</form></body></html>
"""


def _hidden(pairs: Sequence[tuple[str, str]]) -> str:
    return "\n".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in pairs
    )


def _picker(patients: Sequence[tuple[str, str]] | None) -> str:
    if patients is None:
        return ""
    options = "\n".join(
        f'<option value="{escape(pid)}">{escape(label)} ({escape(pid)})</option>'
        for pid, label in patients
    )
    return f'<label>Patient <select name="patient" required>\n{options}\n</select></label>'


def consent_page(client: str, scope: str, pairs: Sequence[tuple[str, str]],
                 patients: Sequence[tuple[str, str]] | None) -> str:  # fmt: skip
    return PAGE.format(client=escape(client), scope=escape(scope), hidden=_hidden(pairs),
                       picker=_picker(patients))  # fmt: skip
