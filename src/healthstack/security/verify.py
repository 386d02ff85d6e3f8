"""Walking the audit hash chains (``healthstack audit verify``): the first break in each chain.

Each chain is streamed in ``seq`` order and every record's hash recomputed from its stored content,
its position and its predecessor's stored hash. A break is then classified by looking at the
records around it: *deleted* (a gap in ``seq``, or a tail shorter than the chain head says),
*reordered* (the record's hash fits another position), *inserted* (the record fits nowhere but the
chain continues without it) or *altered* (anything else, including searchable columns that
disagree with the hashed content).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg

from healthstack.security.chain import CHAINS, genesis, link

WINDOW = 64  # records examined either side of a break to classify it
EXPECTED_CHAINS = frozenset(range(CHAINS))
COLUMNS = ("interaction", "outcome", "subject", "client_id", "resource_type", "resource_id",
           "request_id")  # fmt: skip
_SELECT = ("SELECT seq, hash, content, recorded_at, break_glass, " + ", ".join(COLUMNS)
           + " FROM audit_log WHERE chain_id = %s")  # fmt: skip


@dataclass(frozen=True)
class Row:
    seq: int
    hash: bytes
    content: str
    columns: tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    chain_id: int
    seq: int
    kind: str  # altered | deleted | inserted | reordered
    detail: str

    def __str__(self) -> str:
        return f"chain {self.chain_id} seq {self.seq}: {self.kind}: {self.detail}"


@dataclass
class Report:
    chains: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)  # chain -> (seq, hex hash)

    @property
    def intact(self) -> bool:
        return not self.problems


def _row(record: Sequence[Any]) -> Row:
    return Row(record[0], bytes(record[1]), record[2], tuple(record[3:]))


def _column_mismatch(row: Row) -> str | None:
    try:
        doc = orjson.loads(row.content)
    except orjson.JSONDecodeError:
        return "content is not valid JSON"
    recorded_at, break_glass, *rest = row.columns
    if dt.datetime.fromisoformat(doc.get("time", "")) != recorded_at:
        return "column recorded_at differs from the hashed content"
    if ("break_glass_reason" in doc) != break_glass:
        return "column break_glass differs from the hashed content"
    for name, value in zip(COLUMNS, rest, strict=True):
        if doc.get(name) != value:
            return f"column {name} differs from the hashed content"
    return None


def _rows(conn: psycopg.Connection[Any], chain_id: int) -> Iterator[Row]:
    with conn.cursor(name=f"audit_chain_{chain_id}") as cursor:
        cursor.itersize = 2000
        cursor.execute(_SELECT + " ORDER BY seq", (chain_id,))
        for record in cursor:
            yield _row(record)


def _window(conn: psycopg.Connection[Any], chain_id: int, seq: int) -> list[Row]:
    with conn.cursor() as cursor:
        cursor.execute(_SELECT + " AND seq BETWEEN %s AND %s ORDER BY seq",
                       (chain_id, seq - WINDOW, seq + WINDOW))  # fmt: skip
        return [_row(r) for r in cursor.fetchall()]


def _home(chain_id: int, bad: Row, rows: list[Row]) -> int | None:
    """The seq this record's hash was computed for, if it fits after any record of the window."""
    befores = {r.hash for r in rows} | {genesis(chain_id)}
    for seq in range(max(1, bad.seq - WINDOW), bad.seq + WINDOW + 1):
        if seq != bad.seq and any(bad.hash == link(h, chain_id, seq, bad.content) for h in befores):
            return seq
    return None


def _classify(conn: psycopg.Connection[Any], chain_id: int, bad: Row, prev: bytes) -> Problem:
    rows = _window(conn, chain_id, bad.seq)
    later = [r for r in rows if r.seq > bad.seq]
    following = later[0] if later else None
    if following and following.hash == link(bad.hash, chain_id, following.seq, following.content):
        return Problem(chain_id, bad.seq, "altered", "content does not match its hash")
    # Does this record's hash belong at another position (after some other record's hash)?
    home = _home(chain_id, bad, rows)
    if home is not None:
        if any(r.seq == home and r.hash == bad.hash for r in rows):  # the original is in place
            return Problem(chain_id, bad.seq, "inserted", f"copy of the record at seq {home}")
        return Problem(chain_id, bad.seq, "reordered", f"record belongs at seq {home}")
    if following and following.hash == link(prev, chain_id, following.seq - 1, following.content):
        return Problem(chain_id, bad.seq, "inserted", "record is not part of the chain")
    return Problem(chain_id, bad.seq, "altered", "record does not link to its predecessor")


def verify_chain(conn: psycopg.Connection[Any], chain_id: int, head_seq: int, head: bytes,
                 report: Report, anchor: tuple[int, str] | None = None) -> None:  # fmt: skip
    prev, expected = genesis(chain_id), 1
    report.heads[chain_id] = (head_seq, head.hex())
    for row in _rows(conn, chain_id):
        report.records += 1
        problem = _check(conn, chain_id, row, prev, expected) or _anchored(chain_id, row, anchor)
        if problem is not None:
            report.problems.append(problem)
            return
        prev, expected = row.hash, row.seq + 1
    if anchor is not None and anchor[0] > expected - 1:
        report.problems.append(Problem(chain_id, expected, "deleted",
                                       f"the chain ends before its anchored seq {anchor[0]}"))  # fmt: skip
        return
    last = expected - 1
    if last != head_seq or prev != head:
        kind = "deleted" if head_seq > last else "inserted" if head_seq < last else "altered"
        detail = f"the chain head (seq {head_seq}) does not match the last record (seq {last})"
        report.problems.append(Problem(chain_id, expected, kind, detail))


def _anchored(chain_id: int, row: Row, anchor: tuple[int, str] | None) -> Problem | None:
    """A chain recomputed from scratch by someone who can write the table is consistent with
    itself, but not with a head recorded outside the database earlier (``--anchor``)."""
    if anchor is None or row.seq != anchor[0] or row.hash.hex() == anchor[1]:
        return None
    return Problem(chain_id, row.seq, "altered", "differs from the anchored head: chain rewritten")


def _check(conn: psycopg.Connection[Any], chain_id: int, row: Row, prev: bytes,
           expected: int) -> Problem | None:  # fmt: skip
    if row.seq != expected:
        return Problem(chain_id, expected, "deleted",
                       f"records seq {expected}..{row.seq - 1} are missing")  # fmt: skip
    if row.hash != link(prev, chain_id, row.seq, row.content):
        return _classify(conn, chain_id, row, prev)
    mismatch = _column_mismatch(row)
    return Problem(chain_id, row.seq, "altered", mismatch) if mismatch else None


def verify(url: str, anchors: dict[int, tuple[int, str]] | None = None) -> Report:
    """Walk every chain; ``anchors`` (chain -> (seq, hex hash)) are heads saved by an earlier run."""
    anchors = anchors or {}
    report = Report()
    with psycopg.connect(url) as conn:
        # One snapshot for heads and records, so appends during the walk are simply not seen.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        heads = conn.execute("SELECT chain_id, seq, head FROM audit_chain ORDER BY chain_id")
        present = set()
        for chain_id, head_seq, head in heads.fetchall():
            present.add(chain_id)
            report.chains += 1
            if chain_id not in EXPECTED_CHAINS:
                report.problems.append(Problem(chain_id, 0, "inserted",
                                               "a chain the schema never created"))  # fmt: skip
                continue
            verify_chain(conn, chain_id, head_seq, bytes(head), report, anchors.get(chain_id))
        orphans = conn.execute(
            "SELECT chain_id, min(seq) FROM audit_log WHERE chain_id NOT IN "
            "(SELECT chain_id FROM audit_chain) GROUP BY chain_id ORDER BY chain_id"
        ).fetchall()
    for chain_id, seq in orphans:
        report.problems.append(Problem(chain_id, seq, "inserted", "the chain does not exist"))
    # The set of chains is fixed by the schema (chain.CHAINS); an anchor names chains that existed.
    for chain_id in sorted((EXPECTED_CHAINS | set(anchors)) - present):
        why = "anchored but missing" if chain_id in anchors else "missing: its head row is gone"
        report.problems.append(Problem(chain_id, 0, "deleted", f"the whole chain is {why}"))
    return report
