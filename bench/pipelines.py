"""Shell pipelines the share bench times: one command or two joined by a pipe, with the
wall time, the peak RSS of each process (VmHWM sampled from /proc every 10 ms) and the CPU
seconds of all of them and of the Kubo daemon meanwhile.

(Not ru_maxrss from wait4: Linux carries the parent's peak RSS into a child across
fork/vfork and exec, so every child would report at least this bench's own peak.)
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Round", "cpu_seconds", "run_pipeline", "stamp", "vm_hwm"]


@dataclass(frozen=True)
class Round:
    seconds: float
    peak_rss: int  # bytes: the largest process of the side
    cpu: float  # CPU seconds of the side's own processes
    kubo_cpu: float  # CPU seconds the daemon used meanwhile


def vm_hwm(pid: int) -> int:
    """The peak RSS so far of a running process, in bytes (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pipeline(
    commands: list[list[str]],
    *,
    env: dict[str, str],
    kubo_pid: int,
    discard: bool = False,
    quiet: bool = False,
    less: float = 0.0,
) -> tuple[str, Round]:
    """Run ``commands`` joined by pipes; the last one's stdout is returned, or sent to
    /dev/null with ``discard`` (an open's plaintext). The round's time is the wall time
    less ``less`` seconds (a CLI's start-up, where the caller wants the operation alone)."""
    kubo_before, cpu_before = cpu_seconds(kubo_pid), _children_cpu()
    procs: list[subprocess.Popen[bytes]] = []
    sink = open(os.devnull, "wb")  # noqa: SIM115
    err = sink if quiet else None
    start = time.perf_counter()
    try:
        previous = None
        for i, cmd in enumerate(commands):
            last = i == len(commands) - 1
            out = sink if last and discard else subprocess.PIPE
            proc = subprocess.Popen(cmd, stdin=previous, stdout=out, stderr=err, env=env)
            if previous is not None:
                previous.close()  # the next process holds the pipe now
            previous = proc.stdout if not last else None
            procs.append(proc)
        peak = 0
        while any(p.poll() is None for p in procs):
            peak = max(peak, *(vm_hwm(p.pid) for p in procs))
            time.sleep(0.01)
        elapsed = time.perf_counter() - start - less
    finally:
        sink.close()
    tail = procs[-1]
    output = tail.stdout.read().decode() if tail.stdout else ""
    for cmd, proc in zip(commands, procs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} {cmd[1:3]} failed with exit code {proc.returncode}")
    kubo = cpu_seconds(kubo_pid) - kubo_before
    cpu = _children_cpu() - cpu_before
    return output, Round(elapsed, peak, cpu, kubo)


def stamp(path: Path) -> None:
    """Make the file fresh bytes for the next add: 32 new random bytes at the start of
    every 256 KiB leaf, so no block of it exists on the node yet (no dedup), while the
    rest of the file stays in the page cache, the same for every side."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for offset in range(0, size, 256 * 1024):
            os.pwrite(f.fileno(), os.urandom(32), offset)
