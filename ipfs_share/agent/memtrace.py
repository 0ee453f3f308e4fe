"""An opt-in memory trace of the agent, for finding what it keeps (off by default).

``IPFS_SHARE_TRACEMALLOC=SECONDS`` in the agent's environment starts :mod:`tracemalloc`
(8 frames a trace) and, every ``SECONDS`` and on ``SIGUSR1``, writes to
``<home>/memtrace/``:

- ``NNNN.snap``: a :meth:`tracemalloc.Snapshot.dump` (file names, line numbers and sizes
  of the live allocations; never their contents, so no key or plaintext is in it);
- a line of ``stats.jsonl``: the time, resident memory (VmRSS), what tracemalloc traces,
  the live tasks, threads, what SQLite holds (``sqlite3_memory_used``: page caches and
  statements), and glibc's heap (``mallinfo2``: in use, free, mmapped bytes).

Read them with ``python -m ipfs_share.agent.memtrace DIR`` (the growth between the first
snapshot after a warm-up and the last, by line and by traceback). Tracing costs CPU and
memory of its own: it is for a diagnostic run, never for production.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

__all__ = ["ENV", "MemTrace", "from_env", "sample"]

ENV = "IPFS_SHARE_TRACEMALLOC"
FRAMES = 8

log = logging.getLogger("ipfs_share.agent")


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> dict[str, int]:
    """glibc's heap, all arenas: bytes in use, free (held, not returned), mmapped."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    fn.restype = _MallInfo2
    m = fn()
    return {"heap_in_use": m.uordblks, "heap_free": m.fordblks, "mmapped": m.hblkhd}


def _sqlite_memory() -> int | None:
    """What SQLite holds now (page caches, statements, schema), all connections."""
    try:
        import _sqlite3

        fn = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (ImportError, OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int64
    return int(fn())


def sample(tasks: int | None = None) -> dict[str, Any]:
    """One line of ``stats.jsonl``: what this process holds now."""
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    return {
        "t": round(time.time(), 1),
        "rss": _rss(),
        "traced": traced,
        "blocks": sys.getallocatedblocks(),
        "tasks": tasks,
        "threads": threading.active_count(),
        "sqlite": _sqlite_memory(),
        **_mallinfo(),
    }


class MemTrace:
    """Snapshots every ``every`` s and on SIGUSR1, into ``directory``."""

    def __init__(self, directory: Path, every: float) -> None:
        self.directory = directory
        self.every = every
        self._n = 0

    def dump(self, tasks: int | None = None) -> None:
        self.directory.mkdir(mode=0o700, exist_ok=True)
        tracemalloc.take_snapshot().dump(str(self.directory / f"{self._n:04d}.snap"))
        self._n += 1
        with (self.directory / "stats.jsonl").open("a") as f:
            f.write(json.dumps(sample(tasks)) + "\n")

    def _dump_now(self) -> None:
        self.dump(len(asyncio.all_tasks()))

    async def run(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self._dump_now)
        log.warning("memory trace on: snapshots every %gs in %s", self.every, self.directory)
        try:
            while True:
                await asyncio.to_thread(self.dump, len(asyncio.all_tasks()))
                await asyncio.sleep(self.every)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGUSR1)


def from_env(home: Path) -> MemTrace | None:
    """The trace ``IPFS_SHARE_TRACEMALLOC`` asks for, or None (unset, empty or 0)."""
    value = os.environ.get(ENV, "").strip()
    if not value or value == "0":
        return None
    try:
        every = float(value)
    except ValueError:
        log.warning("%s=%r is not a number of seconds: no memory trace", ENV, value)
        return None
    return MemTrace(home / "memtrace", max(1.0, every))


def _report(directory: Path, skip: int, top: int) -> None:  # pragma: no cover - a tool
    snaps = sorted(directory.glob("*.snap"))
    first = tracemalloc.Snapshot.load(str(snaps[min(skip, len(snaps) - 1)]))
    last = tracemalloc.Snapshot.load(str(snaps[-1]))
    stats = [json.loads(line) for line in (directory / "stats.jsonl").read_text().splitlines()]
    a, b = stats[min(skip, len(stats) - 1)], stats[-1]
    mib = 1 << 20
    print(f"{len(snaps)} snapshots; from #{skip} to #{len(snaps) - 1}, {b['t'] - a['t']:.0f} s")
    for k in ("rss", "traced", "sqlite", "heap_in_use", "heap_free", "mmapped"):
        if a.get(k) is not None and b.get(k) is not None:
            print(
                f"  {k:12} {a[k] / mib:8.2f} -> {b[k] / mib:8.2f} MiB ({(b[k] - a[k]) / mib:+.2f})"
            )
    for k in ("blocks", "tasks", "threads"):
        print(f"  {k:12} {a.get(k)} -> {b.get(k)}")
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, last = first.filter_traces(filters), last.filter_traces(filters)
    for key in ("lineno", "traceback"):
        print(f"\ntop {top} by {key}:")
        for s in last.compare_to(first, key)[:top]:
            print(f"  {s.size_diff / 1024:+9.1f} KiB {s.count_diff:+7d} blocks")
            for line in s.traceback.format()[: (16 if key == "traceback" else 2)]:
                print(f"      {line}")


if __name__ == "__main__":  # pragma: no cover - a tool
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ipfs_share.agent.memtrace")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--skip", type=int, default=1, help="warm-up snapshots to skip")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    _report(args.directory, args.skip, args.top)
