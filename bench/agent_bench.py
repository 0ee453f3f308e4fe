"""``ipfs-share open`` of a 1 KiB capsule through the agent vs the ``ipfs cat`` CLI of its
ciphertext, side by side, on one fresh node, in the same run.

Both are whole processes, as a person at a shell runs them: ``ipfs-share open CAPSULE``
(the console script; the agent holds bob's keys, no passphrase in the environment) and
``ipfs --api ... cat CID`` of the envelope the capsule links to. Iterations alternate
the two sides; the first few of each warm up and are not counted. Reported: median,
p10/p90, min/max of each, and the ratio of medians (target: at most 5x). For scale, a
few opens without the agent (the command unlocks by itself: argon2id at the default
cost, then the open) are timed too.

Run: ``python -m bench.run agent`` (or ``python -m bench.agent_bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ipfs_share.agent.files import socket_path
from ipfs_share.agent.remote import AgentClient
from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.node.ports import NodePorts, free_port
from ipfs_share.storage.kubo import KuboStorage

SIZE = 1024
ITERATIONS = 40
WARMUP = 5
LOCAL_ITERATIONS = 3
PASSPHRASE = b"bench passphrase"
TARGET_RATIO = 5.0


def log(message: str) -> None:
    print(f"bench agent: {message}", file=sys.stderr)


def _ipfs_share() -> str:
    """The console script next to this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("ipfs-share")
    return str(script) if script.exists() else "ipfs-share"


def _wall(cmd: list[str], env: dict[str, str], expect: bytes | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {done.stderr.decode(errors='replace')[-300:]}")
    if expect is not None and done.stdout != expect:
        raise RuntimeError(f"{cmd[:3]} gave {len(done.stdout)} bytes, not the plaintext")
    return elapsed


def _summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    deciles = statistics.quantiles(ms, n=10) if len(ms) >= 2 else ms * 9
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p10_ms": round(deciles[0], 2),
        "p90_ms": round(deciles[-1], 2),
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
    }


async def _setup(api: str, tmp: Path) -> tuple[str, str, bytes]:
    """alice shares 1 KiB with bob; bob's identity is sealed at the default KDF cost.
    Returns (capsule, the ciphertext's CID, the plaintext)."""
    plaintext = bytes(range(256)) * (SIZE // 256)
    alice = Mesh(
        await KuboStorage.connect(api),
        tmp / "alice",
        passphrase=lambda _: PASSPHRASE,
        kdf=KdfParams.fastest(),
    )
    bob = Mesh(await KuboStorage.connect(api), tmp / "bob", passphrase=lambda _: PASSPHRASE)
    try:
        await alice.identity.create("alice")
        bob_id = await bob.identity.create("bob")  # default argon2id cost: what users have
        await bob.identity.publish()
        alice.identity.add_contact("bob", bob_id.did)
        f = await alice.files.put("note.bin", plaintext)
        capsule = await alice.share.file(f).with_("bob")
        return capsule.id, f.cid, plaintext
    finally:
        await alice.close()
        await bob.close()


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    binary = find_kubo() or install_kubo()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-bench-agent-") as name:
        tmp = Path(name)
        daemon = KuboDaemon(tmp / "repo", binary)
        daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
        daemon.start()
        try:
            node = daemon.wait_ready(timeout=60)
            capsule, cid, plaintext = asyncio.run(_setup(node.api_url, tmp))
            return _measure(node.api_url, node.api_multiaddr, binary, tmp, capsule, cid, plaintext)
        finally:
            daemon.stop()


def _measure(
    api: str, maddr: str, binary: Path, tmp: Path, capsule: str, cid: str, plaintext: bytes
) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_SHARE_")}
    env = {**base, "IPFS_SHARE_HOME": str(tmp / "bob"), "IPFS_SHARE_API": api}
    ipfs_env = {**base, "IPFS_PATH": str(tmp / "repo")}
    ours = [_ipfs_share(), "open", capsule]
    plain = [str(binary), f"--api={maddr}", "cat", cid]
    envelope = subprocess.run(plain, env=ipfs_env, capture_output=True, check=True).stdout

    log("without the agent (the command unlocks by itself)")
    local_env = {**env, "IPFS_SHARE_PASSPHRASE": PASSPHRASE.decode()}
    local = [_wall(ours, local_env, plaintext) for _ in range(LOCAL_ITERATIONS)]

    log("starting bob's agent")
    agent = subprocess.Popen(
        [_ipfs_share(), "serve", "--log-level", "warning"],
        env={**env, "IPFS_SHARE_PASSPHRASE": PASSPHRASE.decode()},
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_agent(tmp / "bob", agent)
        times: dict[str, list[float]] = {"ours": [], "plain": []}
        for i in range(WARMUP + ITERATIONS):
            for side in ("ours", "plain") if i % 2 == 0 else ("plain", "ours"):
                if side == "ours":
                    elapsed = _wall(ours, env, plaintext)  # no passphrase anywhere
                else:
                    elapsed = _wall(plain, ipfs_env, envelope)
                if i >= WARMUP:
                    times[side].append(elapsed)
    finally:
        os.kill(agent.pid, signal.SIGTERM)
        agent.wait(30)
    ours_s, plain_s = _summary(times["ours"]), _summary(times["plain"])
    ratio = ours_s["median_ms"] / plain_s["median_ms"]
    result = {
        "size": SIZE,
        "iterations": ITERATIONS,
        "open_via_agent": ours_s,
        "ipfs_cat_cli": plain_s,
        "ratio_of_medians": round(ratio, 2),
        "target_ratio_max": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "open_without_agent": _summary(local),
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "whole processes, alternated; the machine may be shared (see load_average)",
    }
    log(f"open via agent median {ours_s['median_ms']} ms vs ipfs cat {plain_s['median_ms']} ms")
    return result


def _wait_agent(home: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited with {proc.returncode}")
        if socket_path(home).exists():
            try:
                if AgentClient(socket_path(home)).status()["node"]["up"]:
                    return
            except Exception:
                pass
        time.sleep(0.1)
    raise RuntimeError("the agent did not come up")


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
