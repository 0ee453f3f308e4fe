"""Storage-layer add and cat vs plain `ipfs add` / `ipfs cat`, same node, same run.

Both sides move the same file through the same daemon: plain Kubo with
`ipfs add --cid-version=1 --raw-leaves` and `ipfs cat`, ipfs-share with KuboStorage.add
(streamed from the file in 1 MiB pieces, CID computed locally and checked) and
KuboStorage.cat. Times are of the operation alone: the worker times itself in-process,
and the plain side's wall time has the `ipfs` CLI's own start-up (the best of five
`ipfs --api ... version` runs, measured in the same run) taken off. Between adds the pin
is removed and the repo garbage-collected, so every add writes every block. Each
measurement runs in a fresh process so its peak RSS (ru_maxrss from wait4) is its own.
Rounds alternate sides; the best of each is kept.

Targets (issue 2): add and cat >= 0.9x plain throughput; peak RSS < 100 MiB for 1 GiB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.node.ports import NodePorts, free_port

_PIECE = 1 << 20


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run ``cmd``; return (seconds, peak RSS in bytes, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[:3]} failed with {status}")
    return elapsed, usage.ru_maxrss * 1024, out.decode().strip()


def _write_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n


def run(args: argparse.Namespace) -> dict[str, Any]:
    size: int = args.size
    rounds: int = args.rounds
    binary = find_kubo() or install_kubo()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-bench-") as tmp:
        tmpdir = Path(tmp)
        daemon = KuboDaemon(tmpdir / "repo", binary)
        daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
        daemon.start()
        try:
            node = daemon.wait_ready(timeout=60)
            return _measure(node.api_multiaddr, node.api_url, binary, tmpdir, size, rounds)
        finally:
            daemon.stop()


def _measure(
    api: str, url: str, binary: Path, tmpdir: Path, size: int, rounds: int
) -> dict[str, Any]:
    path = tmpdir / "data.bin"
    print(f"bench storage: writing {size} random bytes", file=sys.stderr)
    _write_file(path, size)
    ipfs = [str(binary), "--api", api]
    worker = [sys.executable, "-m", "bench.storage_worker", url, str(path)]
    env = dict(os.environ, IPFS_PATH=str(tmpdir / "repo"))

    def gc(cid: str) -> None:
        subprocess.run([*ipfs, "pin", "rm", cid], capture_output=True, env=env)
        subprocess.run([*ipfs, "repo", "gc", "--quiet"], capture_output=True, env=env, check=True)

    best: dict[str, tuple[float, int]] = {}

    def keep(name: str, seconds: float, rss: int) -> None:
        if name not in best or seconds < best[name][0]:
            best[name] = (seconds, max(rss, best.get(name, (0, 0))[1]))
        else:
            best[name] = (best[name][0], max(rss, best[name][1]))

    cli_startup = min(_timed([*ipfs, "version"], env)[0] for _ in range(5))

    cids: dict[str, str] = {}
    for r in range(rounds):
        order = ["plain", "ours"] if r % 2 == 0 else ["ours", "plain"]
        for side in order:
            if side == "plain":
                cmd = [*ipfs, "add", "-Q", "--cid-version=1", "--raw-leaves", str(path)]
                t, rss, out = _timed(cmd, env)
                t -= cli_startup
                cids[side] = out.splitlines()[-1]
            else:
                _, rss, out = _timed([*worker, "add"])
                cids[side], seconds = out.splitlines()[-1].split()
                t = float(seconds)
            keep(f"add_{side}", t, rss)
            print(f"bench storage: round {r + 1} add {side}: {t:.2f}s", file=sys.stderr)
            gc(cids[side])
    if cids["plain"] != cids["ours"]:
        raise RuntimeError(f"CIDs differ: plain {cids['plain']}, ours {cids['ours']}")
    cid = cids["plain"]
    subprocess.run(
        [*ipfs, "add", "-Q", "--cid-version=1", "--raw-leaves", str(path)],
        capture_output=True,
        env=env,
        check=True,
    )
    for r in range(rounds):
        order = ["plain", "ours"] if r % 2 == 0 else ["ours", "plain"]
        for side in order:
            if side == "plain":
                t, rss, out = _timed_cat_plain(ipfs, cid, env)
                t -= cli_startup
            else:
                _, rss, out = _timed([*worker, "cat", cid])
                count, seconds = out.splitlines()[-1].split()
                t = float(seconds)
                if int(count) != size:
                    raise RuntimeError(f"cat returned {count} bytes, expected {size}")
            keep(f"cat_{side}", t, rss)
            print(f"bench storage: round {r + 1} cat {side}: {t:.2f}s", file=sys.stderr)

    mib = size / (1 << 20)

    def rate(name: str) -> float:
        return round(mib / best[name][0], 1)

    return {
        "entry": "storage",
        "size_bytes": size,
        "cid": cid,
        "rounds": rounds,
        "ipfs_cli_startup_s": round(cli_startup, 3),
        "add": {
            "plain_MiB_s": rate("add_plain"),
            "ours_MiB_s": rate("add_ours"),
            "ratio": round(best["add_plain"][0] / best["add_ours"][0], 3),
            "ours_peak_rss_MiB": round(best["add_ours"][1] / (1 << 20), 1),
        },
        "cat": {
            "plain_MiB_s": rate("cat_plain"),
            "ours_MiB_s": rate("cat_ours"),
            "ratio": round(best["cat_plain"][0] / best["cat_ours"][0], 3),
            "ours_peak_rss_MiB": round(best["cat_ours"][1] / (1 << 20), 1),
        },
        "targets": {"ratio_min": 0.9, "peak_rss_max_MiB": 100},
    }


def _timed_cat_plain(ipfs: list[str], cid: str, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen([*ipfs, "cat", cid], stdout=sink, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("ipfs cat failed")
    return time.perf_counter() - start, usage.ru_maxrss * 1024, ""


if __name__ == "__main__":
    print(run(argparse.Namespace(size=1 << 28, rounds=1)))
