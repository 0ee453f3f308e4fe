"""One measured side of the share bench, in its own process (so its peak RSS is its own).

    python -m bench.share_worker API_URL HOME put FILE      -> prints "CID SECONDS PEAK CPU"
    python -m bench.share_worker API_URL HOME open CAPSULE  -> prints "BYTES SECONDS PEAK CPU"

``put`` is ``mesh.files.put`` of FILE (a path: streamed, encrypted, added, pinned) as the
home's default identity; ``open`` is ``mesh.share.open_capsule`` as the home's default
identity, with every plaintext byte streamed to /dev/null. SECONDS is the operation alone,
from the call to the last byte: connecting and the interpreter's start-up are not counted
(the bench takes the ipfs CLI's start-up off the plain side the same way). PEAK is this
process's peak RSS in bytes, read from VmHWM in /proc/self/status: the peak of the memory
map made at exec. (wait4's ru_maxrss would not do: Linux carries the parent's peak RSS
into a child across fork/vfork and exec, so a child never reports less than the bench.)
CPU is the CPU seconds of the operation, all threads (process_time).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from ipfs_share.client import connect
from ipfs_share.crypto.passphrase import KdfParams

# Bench identities are sealed with this passphrase under the cheapest KDF: the KDF is not
# what the bench measures.
PASSPHRASE = b"bench passphrase"
KDF = KdfParams.fastest()


def peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def main(api: str, home: str, op: str, arg: str) -> None:
    async with await connect(api, home=home, passphrase=lambda _: PASSPHRASE, kdf=KDF) as mesh:
        if op == "put":
            start, cpu = time.perf_counter(), time.process_time()
            file = await mesh.files.put(Path(arg).name, Path(arg))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(file.cid, seconds, peak_rss(), cpu)
        elif op == "open":
            n = 0
            with open(os.devnull, "wb") as sink:  # noqa: ASYNC230 - /dev/null never blocks
                start, cpu = time.perf_counter(), time.process_time()
                opened = await mesh.share.open_capsule(arg)
                async for piece in opened:
                    sink.write(piece)
                    n += len(piece)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                print(n, seconds, peak_rss(), cpu)
        else:
            raise SystemExit(f"expected put or open, found {op!r}")


if __name__ == "__main__":
    api, home, op, arg = sys.argv[1:]
    asyncio.run(main(api, home, op, arg))
