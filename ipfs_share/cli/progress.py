"""A one-line progress bar on stderr for long transfers, with no dependency.

It draws only when stderr is a terminal and the output is not ``--json``, and only once a
transfer has run for a moment (:data:`DELAY` seconds), so quick commands print nothing
extra and logs and pipes never see a carriage return.

>>> import io
>>> class Tty(io.StringIO):
...     def isatty(self) -> bool:
...         return True
>>> t = iter(range(100))
>>> err = Tty()
>>> bar = Progress(err, "put", 2 << 20, clock=lambda: float(next(t)), width=60)
>>> bar.update(1 << 20)
>>> err.getvalue().split("\\r")[-1].rstrip()
'put [###########------------]  50%  1.0/2.0 MiB  1.0 MiB/s'
>>> bar.close()
>>> err.getvalue().endswith("\\r")
True
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["DELAY", "Progress", "human_size"]

DELAY = 0.5  # seconds before the bar first appears
INTERVAL = 0.1  # seconds between redraws
_MIB = 1 << 20


def human_size(n: int) -> str:
    """Bytes as a person reads them.

    >>> human_size(512), human_size(1536), human_size(3 << 20), human_size(5 << 30)
    ('512 B', '1.5 KiB', '3.0 MiB', '5.0 GiB')
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Progress:
    """Call :meth:`update` with the bytes done so far; :meth:`close` (or ``with``) at the end.

    ``total`` None draws a counter without a bar (a stream of unknown length). Disabled
    (every call a no-op) unless ``stream`` is a terminal and ``enabled`` is true."""

    def __init__(
        self,
        stream: TextIO,
        label: str,
        total: int | None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self._clock = clock
        self._width = width
        self._active = enabled and _isatty(stream)
        self._start = clock()
        self._last_draw = float("-inf")
        self._drawn = False

    @property
    def active(self) -> bool:
        """Whether :meth:`update` draws anything (a caller may then skip reporting)."""
        return self._active

    def phase(self, label: str, total: int | None) -> None:
        """Start the next stage of one transfer (e.g. read stdin, then store) on the same line."""
        self._label, self._total = label, total
        self._start, self._last_draw = self._clock(), float("-inf")

    def update(self, done: int) -> None:
        if not self._active:
            return
        now = self._clock()
        if now - self._start < DELAY or now - self._last_draw < INTERVAL:
            return
        self._last_draw = now
        self._draw(done, now - self._start)

    def _draw(self, done: int, elapsed: float) -> None:
        width = self._width or shutil.get_terminal_size((80, 24)).columns
        rate = f"{done / _MIB / elapsed:.1f} MiB/s" if elapsed > 0 else ""
        if self._total:
            done = min(done, self._total)  # ciphertext runs a little past the plaintext size
            share = done / self._total
            figures = f"{share:4.0%}  {done / _MIB:.1f}/{self._total / _MIB:.1f} MiB  {rate}"
            room = max(10, min(40, width - len(self._label) - len(figures) - 6))
            filled = int(room * share)
            line = f"{self._label} [{'#' * filled}{'-' * (room - filled)}] {figures}"
        else:
            line = f"{self._label}  {human_size(done)}  {rate}"
        self._stream.write("\r" + line[: width - 1].ljust(width - 1))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Wipe the bar, so the next line of output starts clean."""
        if self._drawn:
            width = self._width or shutil.get_terminal_size((80, 24)).columns
            self._stream.write("\r" + " " * (width - 1) + "\r")
            self._stream.flush()
            self._drawn = False
        self._active = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
