"""Put through IPFS Cluster vs ``ipfs-cluster-ctl add``, on one fresh 3-peer local cluster.

- ours: ``mesh.files.put`` of a --size file with replication 2 (encrypt, stream to the
  cluster's ``/add``, which chunks it and sends the blocks to the two peers it allocates,
  wait until both report it pinned, record it), in a worker process timing itself;
- plain: ``ipfs-cluster-ctl add --rmin 2 --rmax 2 --cid-version 1 --raw-leaves --wait`` of
  the same plaintext file on the same cluster (the same parameters; ``--wait`` so that
  both sides return once the copies are pinned), wall time less ipfs-cluster-ctl's own
  start-up (the best of five ``--version`` runs);
- plain_nowait: the same without ``--wait`` (returns once the cluster committed the pin,
  before the peers report it pinned): the add alone, a stricter baseline than ours does.

Every round writes a fresh random file (no deduplication between rounds) and rotates
which side goes first; after each add the pin is removed and every peer's repo garbage
collected, so each add writes every block. The ratio is the throughput of ours over
plain's (target >= 0.9x), from the medians; every round's times are reported too, with the
machine's load averages before and after, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.share_worker import KDF, PASSPHRASE
from bench.storage_bench import _timed, _write_file
from ipfs_share.node.cluster import LocalCluster
from ipfs_share.node.cluster_install import find_cluster, install_cluster
from ipfs_share.services.identities import IdentityService

COPIES = 2
TARGET_RATIO = 0.9


def run(args: argparse.Namespace) -> dict[str, Any]:
    size: int = args.size
    rounds: int = max(args.rounds, 3)  # a median and a spread need a few
    binaries = find_cluster() or install_cluster()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-cluster-bench-") as tmp:
        tmpdir = Path(tmp)
        cluster = LocalCluster(tmpdir / "cluster", binaries=binaries)
        load_before = os.getloadavg()
        started = time.perf_counter()
        cluster.up(3, progress=False)
        up_seconds = time.perf_counter() - started
        try:
            result = _measure(cluster, binaries.ctl, tmpdir, size, rounds)
        finally:
            cluster.down()
        result["cluster_up_s"] = round(up_seconds, 1)
        result["load_before"] = [round(x, 2) for x in load_before]
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        return result


def _measure(
    cluster: LocalCluster, ctl_binary: Path, tmpdir: Path, size: int, rounds: int
) -> dict[str, Any]:
    rest, kubo = cluster.endpoints()
    host = "/ip4/127.0.0.1/tcp/" + rest[0].rsplit(":", 1)[1]
    ctl = [str(ctl_binary), "--host", host]
    home = tmpdir / "home"
    asyncio.run(
        IdentityService(home, None, passphrase=lambda _: PASSPHRASE, kdf=KDF).create("bench")
    )
    worker = [
        sys.executable,
        "-m",
        "bench.cluster_worker",
        ",".join(rest),
        ",".join(kubo),
        str(home),
        str(COPIES),
    ]
    startup = min(_timed([*ctl, "--version"])[0] for _ in range(5))

    def clean(cid: str) -> None:
        subprocess.run([*ctl, "pin", "rm", cid], capture_output=True, check=True)
        subprocess.run([*ctl, "ipfs", "gc"], capture_output=True, check=True)

    times: dict[str, list[float]] = {"ours": [], "plain": [], "plain_nowait": []}
    rss: list[int] = []
    cpu: list[float] = []
    path = tmpdir / "data.bin"
    for r in range(rounds):
        print(f"bench cluster: round {r + 1}: writing {size} random bytes", file=sys.stderr)
        _write_file(path, size)
        order = ["plain", "ours", "plain_nowait"]
        order = order[r % 3 :] + order[: r % 3]
        for side in order:
            if side.startswith("plain"):
                cmd = [
                    *ctl,
                    "add",
                    "-Q",
                    "--rmin",
                    str(COPIES),
                    "--rmax",
                    str(COPIES),
                    "--cid-version",
                    "1",
                    "--raw-leaves",
                    *(["--wait"] if side == "plain" else []),
                    str(path),
                ]
                seconds, _, out = _timed(cmd)
                seconds -= startup
                cid = out.splitlines()[-1]
            else:
                _, _, out = _timed([*worker, str(path)])
                cid, t, peak, used = out.splitlines()[-1].split()
                seconds = float(t)
                rss.append(int(peak))
                cpu.append(float(used))
            times[side].append(seconds)
            print(f"bench cluster: round {r + 1} {side}: {seconds:.2f}s", file=sys.stderr)
            clean(cid)
    median = {side: statistics.median(ts) for side, ts in times.items()}
    ratio = median["plain"] / median["ours"]
    mib_s = {side: size / (1 << 20) / m for side, m in median.items()}
    return {
        "size": size,
        "replication": COPIES,
        "rounds": rounds,
        "seconds": {side: [round(t, 2) for t in ts] for side, ts in times.items()},
        "median_s": {side: round(m, 2) for side, m in median.items()},
        "MiB_per_s": {side: round(v, 1) for side, v in mib_s.items()},
        "ratio_ours_over_plain": round(ratio, 3),
        "ratio_ours_over_plain_nowait": round(median["plain_nowait"] / median["ours"], 3),
        "ratio_min_max": [
            round(min(times["plain"]) / max(times["ours"]), 3),
            round(max(times["plain"]) / min(times["ours"]), 3),
        ],
        "ctl_startup_s": round(startup, 3),
        "ours_peak_rss_MiB": round(max(rss) / (1 << 20), 1),
        "ours_cpu_s": [round(c, 2) for c in cpu],
        "target_ratio_min": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
    }
