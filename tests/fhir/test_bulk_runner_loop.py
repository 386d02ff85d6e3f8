"""The export runner's loop outlives whatever one step raises (a bucket's botocore error is no
OSError): the failure is logged by type and the next step runs after the back-off."""

from __future__ import annotations

import asyncio

from healthstack.fhir.bulk_runner import Runner


class _Failing(Runner):
    def __init__(self, failures: list[Exception]) -> None:  # no state, store or storage needed
        self.failures = failures
        self.steps = 0
        self.wake = asyncio.Event()
        self.task = None

    async def step(self) -> bool:
        self.steps += 1
        if self.failures:
            raise self.failures.pop(0)
        return False


def test_the_runner_loop_survives_any_failed_step() -> None:
    class EndpointConnectionError(Exception):  # the shape of botocore's, not an OSError
        pass

    async def body() -> None:
        runner = _Failing([EndpointConnectionError("bucket away"), KeyError("x")])
        runner.start()
        for _ in range(500):
            if runner.steps >= 3:
                break
            await asyncio.sleep(0.01)
        assert runner.task is not None
        assert not runner.task.done()  # alive after both failures, and stepping on
        assert runner.steps >= 3
        await runner.stop()

    asyncio.run(body())
