"""Numbers typed by clients: ASCII digits only, bounded before anything converts them.

``str.isdigit`` accepts superscript and non-Latin digits (which ``int()`` rejects or reads), and
``int()`` of a 5,000-digit string raises: both were 500s (issue 12 item 8). Every count, version,
chain number and size in a URL, header or parameter goes through :func:`ascii_int`.
"""

from __future__ import annotations

import re

# 18 digits always fit PostgreSQL's bigint; callers bound further where their column is smaller.
_DIGITS = re.compile(r"[0-9]{1,18}")
INT4_MAX = 2**31 - 1


def ascii_int(text: str, maximum: int = 10**18 - 1) -> int | None:
    """``text`` as a non-negative integer no larger than ``maximum``, or None."""
    if _DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= maximum else None
