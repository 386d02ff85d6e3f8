"""Group commit for audit records written outside a transaction (reads, searches, denials).

Every PHI read appends its audit record before it answers (164.312(b)); outside a transaction
that is a statement and a commit of its own. Under load many reads reach that point in the same
event-loop turn: the first becomes the leader, waits one turn for the others to join, then
appends every joined record with one ``audit_append_many`` (chained in join order, one commit)
on its own connection, and wakes the others. Each request still answers only after its record is
committed, and fails (503/500) if the group's append fails: the write stays in the request, it is
not deferred. Records inside a transaction (writes) never join a group: they must commit or roll
back with the change they describe (``audit.record``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

APPEND_MANY_SQL = "SELECT audit_append_many($1, $2::text[])"


class GroupAborted(Exception):
    """The leader stopped before the group's append (its task was cancelled): nothing written."""


class AuditGroup:
    """One per service process; only ever used from its event loop's thread."""

    def __init__(self) -> None:
        # The batch a leader is collecting: each member's contents and, for followers, the
        # future the leader settles with None (written) or the exception of the append.
        self._open: list[tuple[Sequence[str], asyncio.Future[BaseException | None] | None]] | None
        self._open = None
        self.appends = 0  # statements sent (tests and the bench read these)
        self.records = 0

    async def append(self, conn: asyncpg.Connection, contents: Sequence[str], hint: int) -> None:
        """Write ``contents`` (in order, adjacent in their chain) and commit, with whatever other
        records join in this turn. Raises the database error of the group's append."""
        if self._open is not None:
            waiter: asyncio.Future[BaseException | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._open.append((contents, waiter))
            failure = await waiter
            if failure is not None:
                raise failure
            return
        batch: list[tuple[Sequence[str], asyncio.Future[BaseException | None] | None]]
        batch = [(contents, None)]
        self._open = batch
        try:
            try:
                await asyncio.sleep(0)  # one turn: requests ready in this one join
            finally:
                self._open = None
            joined = [content for member, _ in batch for content in member]
            self.appends += 1
            self.records += len(joined)
            await conn.execute(APPEND_MANY_SQL, hint, joined)
        except BaseException as error:
            # Never leave a follower waiting: each fails as the group did; a cancelled leader's
            # followers fail with GroupAborted, not with its cancellation.
            _settle(batch, error if isinstance(error, Exception) else GroupAborted())
            raise
        _settle(batch, None)


def _settle(
    batch: list[tuple[Sequence[str], asyncio.Future[BaseException | None] | None]],
    failure: BaseException | None,
) -> None:
    for _, waiter in batch:
        if waiter is not None and not waiter.done():
            waiter.set_result(failure)
