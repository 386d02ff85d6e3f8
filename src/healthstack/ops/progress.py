"""Progress of long commands: a bar on a terminal, plain periodic lines everywhere else.

On an interactive terminal the bar is tqdm's (a maintained library: it owns cursor handling,
terminal width and rate smoothing). In CI, under ``TERM=dumb`` or when the stream is a file or a
pipe (logs, ``kubectl logs`` of a Job), control codes would be noise, so the same meter writes a
plain line at most every ``interval`` seconds and a last one when it closes. Lines carry counts,
rate and time left, never row content (PHI stays out of terminals and logs).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO, Any, TextIO

from tqdm import tqdm

DEFAULT_INTERVAL = 5.0
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def interactive(stream: TextIO) -> bool:
    """A bar only where a person watches a terminal: not in CI, not on a dumb terminal."""
    if os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def amount(value: float, unit: str) -> str:
    """``1.5 MiB`` for bytes, ``1,234 rows`` for anything else."""
    if unit != "B":
        return f"{value:,.0f} {unit}"
    for name in _BYTE_UNITS:
        if abs(value) < 1024 or name == _BYTE_UNITS[-1]:
            return f"{value:.0f} {name}" if name == "B" else f"{value:.1f} {name}"
        value /= 1024
    raise AssertionError("unreachable")


def _rate(value: float, unit: str) -> str:
    """Slow work keeps its digits (``0.0074 runs``), fast work reads like an amount."""
    return f"{value:.2g} {unit}" if unit != "B" and 0 < value < 10 else amount(value, unit)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Meter:
    """Counts work done toward an optional total; use as a context manager."""

    def __init__(
        self,
        label: str,
        *,
        total: float | None = None,
        unit: str = "items",
        stream: TextIO | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        bar: bool | None = None,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self.clock = interval, clock
        self.done = 0.0
        self.started = self.last_line = clock()
        self._said: float | None = None  # ``done`` as of the last line written
        use_bar = interactive(self.stream) if bar is None else bar
        self._bar: Any = self._make_bar() if use_bar else None

    def _make_bar(self) -> Any:
        in_bytes = self.unit == "B"  # 1.5MiB rather than 1572864B
        return tqdm(total=self.total, desc=self.label, file=self.stream, leave=True,
                    unit=self.unit, unit_scale=in_bytes, unit_divisor=1024 if in_bytes else 1000)  # fmt: skip

    def set_total(self, total: float | None) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, amount_done: float = 1) -> None:
        self.done += amount_done
        if self._bar is not None:
            self._bar.update(amount_done)
        elif self.clock() - self.last_line >= self.interval:
            self._write_line()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def rate(self) -> float:
        elapsed = self.elapsed()
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """``label: 120 of 1,000 rows (12%), 35 rows/s, about 25s left``."""
        done = amount(self.done, self.unit)
        if self.total:
            done = done if self.unit == "B" else f"{self.done:,.0f}"  # "250 of 1,000 rows"
            share = (
                f"{done} of {amount(self.total, self.unit)} ({100 * self.done / self.total:.0f}%)"
            )
        else:
            share = done
        parts = [f"{self.label}: {share}", f"{_rate(self.rate(), self.unit)}/s"]
        if self.total and self.rate() > 0 and self.done < self.total:
            parts.append(f"about {duration((self.total - self.done) / self.rate())} left")
        parts.append(f"{duration(self.elapsed())} elapsed")
        return ", ".join(parts)

    def _write_line(self) -> None:
        self.last_line, self._said = self.clock(), self.done
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._said != self.done:  # the last line already says where it ended
            self._write_line()

    def __enter__(self) -> Meter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CountingReader:
    """Reads through ``inner`` and counts the bytes on ``meter`` (a pipe has no size to poll)."""

    def __init__(self, inner: IO[bytes], meter: Meter | None) -> None:
        self.inner, self.meter = inner, meter

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if self.meter is not None:
            self.meter.update(len(data))
        return data


def summary_table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    """A one-screen, two-column table in plain text (log-safe: no colours or box characters)."""
    width = max((len(name) for name, _ in rows), default=0)
    lines = [title, "-" * len(title)]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)
