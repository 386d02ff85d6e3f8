"""Group commit for audit records written outside a transaction (reads, searches, denials).

Every PHI read appends its audit record before it answers (164.312(b)); outside a transaction
that is a statement and a commit of its own. Under load many reads reach that point in the same
event-loop turn: the first becomes the leader, waits one turn for the others to join, then
appends every joined record with one ``audit_append_many`` (chained in join order, one commit)
on its own connection, and wakes the others. Each request still answers only after its record is
committed, and fails (503/500) if it cannot be: the write stays in the request, it is not
deferred. Records inside a transaction (writes) never join a group: they must commit or roll
back with the change they describe (``audit.record``).

One member must not fail the others. Where the group's statement is known not to have committed
(the server refused it, the leader's connection was already closed, the leader was cancelled
before sending it) every member writes its own record alone, on its own connection, so only a
bad record or a dead connection fails its own request. Where the outcome is unknown (the
connection was lost or the leader cancelled while the statement ran) the members fail with
:class:`GroupAborted` (503, the client may retry) rather than risk writing a record twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

import asyncpg

from healthstack.service.db import unavailable

APPEND_MANY_SQL = "SELECT audit_append_many($1, $2::text[])"


class GroupAborted(Exception):
    """The group's append may or may not have committed (its connection was lost, or its
    leader cancelled, while the statement ran): this member's record is not known written."""


class _WriteAlone:
    """What a follower is told when the group's statement is known not to have committed."""


WRITE_ALONE: Final = _WriteAlone()
# A follower's outcome: None (written), WRITE_ALONE, or the exception of an unknown outcome.
Outcome = BaseException | _WriteAlone | None
Member = tuple[Sequence[str], "asyncio.Future[Outcome] | None"]


class AuditGroup:
    """One per service process; only ever used from its event loop's thread."""

    def __init__(self) -> None:
        # The batch a leader is collecting: each member's contents and, for followers, the
        # future the leader settles with the member's outcome.
        self._open: list[Member] | None = None
        self.appends = 0  # statements sent (tests and the bench read these)
        self.records = 0

    async def append(self, conn: asyncpg.Connection, contents: Sequence[str], hint: int) -> None:
        """Write ``contents`` (in order, adjacent in their chain) and commit, with whatever other
        records join in this turn. Raises the database error that kept them from being written,
        or :class:`GroupAborted`."""
        if self._open is not None:
            await self._follow(conn, contents, hint)
            return
        batch: list[Member] = [(contents, None)]
        self._open = batch
        written = False
        try:
            try:
                await asyncio.sleep(0)  # one turn: requests ready in this one join
            finally:
                self._open = None
            if len(batch) > 1 and _usable(conn):
                written = await self._lead(conn, hint, batch)
        finally:
            # Whatever happened before the group's outcome was known (cancelled in its turn, a
            # dead connection, a refused statement): nothing of it committed, each writes alone.
            _settle(batch, WRITE_ALONE)
        if not written:
            await self._send(conn, hint, contents)

    async def _follow(self, conn: asyncpg.Connection, contents: Sequence[str], hint: int) -> None:
        assert self._open is not None
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._open.append((contents, waiter))
        outcome = await waiter
        if outcome is WRITE_ALONE:
            await self._send(conn, hint, contents)
        elif isinstance(outcome, BaseException):
            # Its own exception: one object raised in many tasks would share a traceback.
            raise GroupAborted("the audit group's append has an unknown outcome") from outcome

    async def _lead(self, conn: asyncpg.Connection, hint: int, batch: list[Member]) -> bool:
        """Send the batch; True when written, False when the server refused it (it rolled back
        as a whole). Raises when its outcome is unknown, after failing the followers."""
        try:
            await self._send(conn, hint, [content for member, _ in batch for content in member])
        except asyncpg.PostgresError as error:
            if unavailable(error):
                _settle(batch, error)
                raise
            return False
        except BaseException as error:
            _settle(batch, error)
            raise
        _settle(batch, None)
        return True

    async def _send(self, conn: asyncpg.Connection, hint: int, contents: Sequence[str]) -> None:
        self.appends += 1
        self.records += len(contents)
        await conn.execute(APPEND_MANY_SQL, hint, contents)


def _usable(conn: asyncpg.Connection) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # a pool's proxy whose connection the pool took back (lost)
        return False


def _settle(batch: list[Member], outcome: Outcome) -> None:
    for _, waiter in batch:
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)
