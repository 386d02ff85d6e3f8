"""Progress of long commands: plain lines in logs and CI, a tqdm bar on a terminal."""

from __future__ import annotations

import io
import os
import pty

import pytest

from healthstack.ops.progress import (
    CountingReader,
    Meter,
    amount,
    duration,
    interactive,
    summary_table,
)


class Clock:
    """A clock the test moves: lines are paced by time, so the test controls time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_are_paced_and_carry_counts_rate_and_time_left() -> None:
    stream, clock = io.StringIO(), Clock()
    with Meter("keys rotate", total=1000, unit="rows", stream=stream, interval=5,
               clock=clock, bar=False) as meter:  # fmt: skip
        clock.now += 1
        meter.update(100)  # before the interval: silent
        assert stream.getvalue() == ""
        clock.now += 4
        meter.update(150)
        first = stream.getvalue().splitlines()
        assert first == [
            "keys rotate: 250 of 1,000 rows (25%), 50 rows/s, about 15s left, 5s elapsed"
        ]
        meter.update(10)  # again before the next interval: silent
        assert len(stream.getvalue().splitlines()) == 1
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith(
        "keys rotate: 260 of 1,000 rows (26%)"
    )  # closing always says where it ended
    assert "\r" not in stream.getvalue()
    assert "\x1b" not in stream.getvalue()


def test_without_a_total_the_line_has_no_share_or_time_left() -> None:
    stream, clock = io.StringIO(), Clock()
    with Meter("backup create", unit="B", stream=stream, clock=clock, bar=False) as meter:
        clock.now += 2
        meter.update(3 * 1024 * 1024)
    assert stream.getvalue() == "backup create: 3.0 MiB, 1.5 MiB/s, 2s elapsed\n"


def test_a_terminal_gets_a_tqdm_bar() -> None:
    stream = io.StringIO()
    with Meter("drills", total=4, unit="runs", stream=stream, bar=True) as meter:
        meter.update(2)
    drawn = stream.getvalue()
    assert "\r" in drawn
    assert "drills" in drawn
    assert "4/4" not in drawn
    assert "2/4" in drawn


@pytest.mark.parametrize(("env", "expected"), [({}, True), ({"CI": "true"}, False),
                                               ({"TERM": "dumb"}, False)])  # fmt: skip
def test_a_bar_only_on_a_terminal_outside_ci(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty:
        assert interactive(tty) is expected
    os.close(leader)
    assert interactive(io.StringIO()) is False  # a file or pipe: never a bar


def test_slow_work_keeps_its_rate_and_the_end_is_said_once() -> None:
    stream, clock = io.StringIO(), Clock()
    with Meter("drills", total=2, unit="runs", stream=stream, interval=5, clock=clock,
               bar=False) as meter:  # fmt: skip
        clock.now += 270
        meter.update(2)  # the interval has passed: this line is also the last one
    assert stream.getvalue() == "drills: 2 of 2 runs (100%), 0.0074 runs/s, 4m30s elapsed\n"


def test_counting_reader_counts_what_passes_through() -> None:
    stream, clock = io.StringIO(), Clock()
    meter = Meter("restore", unit="B", stream=stream, clock=clock, bar=False)
    reader = CountingReader(io.BytesIO(b"x" * 3000), meter)
    assert len(reader.read(1000)) == 1000
    assert reader.read() == b"x" * 2000
    assert reader.read(10) == b""
    assert meter.done == 3000
    assert CountingReader(io.BytesIO(b"ab"), None).read() == b"ab"


def test_amounts_durations_and_the_summary_table() -> None:
    assert amount(512, "B") == "512 B"
    assert amount(1536, "B") == "1.5 KiB"
    assert amount(12345, "rows") == "12,345 rows"
    assert (duration(5.4), duration(125)) == ("5s", "2m05s")
    table = summary_table("keys rotate", [("current rows", "12"), ("passes", "1")])
    assert table.splitlines() == [
        "keys rotate",
        "-----------",
        "current rows  12",
        "passes        1",
    ]
