"""A plain, text-only PDF (1.4) for the accounting of disclosures: no dependency, nothing embedded.

Helvetica (a standard PDF font: nothing to embed), A4 landscape, long lines wrapped, as many pages
as needed. Characters outside Latin-1 become ``?`` (the standard fonts' encoding); ``\\``, ``(`` and
``)`` are escaped, so text can never end a string early and inject PDF operators.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

WIDTH, HEIGHT, MARGIN, SIZE, LEADING = 842, 595, 40, 8, 10
COLUMNS = 190  # characters of 8 pt Helvetica that fit in the width, conservatively
LINES_PER_PAGE = (HEIGHT - 2 * MARGIN) // LEADING


def _escape(text: str) -> bytes:
    raw = text.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _lines(title: str, rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [title, ""]
    for row in rows:
        wrapped = textwrap.wrap(" | ".join(row), COLUMNS, subsequent_indent="    ") or [""]
        lines.extend(wrapped)
    return lines


def _stream(lines: Sequence[str]) -> bytes:
    body = [f"BT /F1 {SIZE} Tf {LEADING} TL {MARGIN} {HEIGHT - MARGIN} Td".encode()]
    body += [b"(" + _escape(line) + b") Tj T*" for line in lines]
    return b"\n".join([*body, b"ET"])


def render(title: str, rows: Sequence[Sequence[str]]) -> bytes:
    lines = _lines(title, rows)
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
                            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                            b"/Encoding /WinAnsiEncoding >>"]  # fmt: skip
    kids = []
    for page in pages:
        stream = _stream(page)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources "
                       b"<< /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
                       % (WIDTH, HEIGHT, len(objects)))  # fmt: skip
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out, offsets = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
