"""The HTTP API against the real things, side by side, on one fresh node, in the same run.

1. **Small opens**: ``GET /v1/capsules/ID/plaintext`` of a 1 KiB capsule from bob's agent
   (``ipfs-share serve``, keep-alive) vs ``POST /api/v0/cat`` of its ciphertext from
   Kubo's RPC (keep-alive), rotated; and, to tell the HTTP layer's share from the open's
   own, the library's ``open_capsule`` of the same file in this process. Target: the HTTP
   open's median within 3x the cat's.
2. **Streams**: a 1 GiB put (``POST /v1/files``, the body streamed) and open (``GET
   /v1/files/CID/plaintext``) over HTTP vs the library's own ``files.put`` and
   ``files.open`` in this process, rounds alternated, each round new bytes (no
   deduplication), unpinned and garbage-collected after. Target: HTTP >= 0.9x the
   library's throughput.

Reported: medians and spread (p10/p90, min/max), the ratios, the CPU each side cost per
operation (this process, the agent, Kubo: steadier than wall time on a shared machine),
and the load average (the machine may be shared; say so with the numbers).

The agent runs as ``ipfs-share serve`` does by default: an open may use an issuer's
revocation list resolved at most ``--revocation-fresh-for`` seconds ago
(docs/spec/revocation.md section 5.1; ``--fresh-for 0`` measures resolving at every open).

Run: ``python -m bench.http_bench [--size MiB] [--rounds N] [--only small|streams]
[--fresh-for S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from ipfs_share.agent.files import read_token, socket_path
from ipfs_share.agent.remote import AgentClient
from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.node.ports import NodePorts, free_port
from ipfs_share.storage.kubo import KuboStorage

SMALL = 1024
SMALL_ITERATIONS = 200
WARMUP = 20
PIECE = 1 << 20
PASSPHRASE = b"bench passphrase"
TARGET_SMALL = 3.0
TARGET_STREAM = 0.9


def log(message: str) -> None:
    print(f"bench http: {message}", file=sys.stderr)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    deciles = statistics.quantiles(ms, n=10) if len(ms) >= 2 else ms * 9
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p10_ms": round(deciles[0], 3),
        "p90_ms": round(deciles[-1], 3),
        "min_ms": round(ms[0], 3),
        "max_ms": round(ms[-1], 3),
    }


def _rates(size: int, times: list[float]) -> dict[str, float]:
    mib = [size / (1 << 20) / t for t in times]
    return {
        "median_mib_s": round(statistics.median(mib), 1),
        "min_mib_s": round(min(mib), 1),
        "max_mib_s": round(max(mib), 1),
    }


async def _people(api: str, tmp: Path) -> tuple[str, str, str]:
    """alice shares 1 KiB with bob and, for the library's own open, with lib. Returns
    (bob's capsule, the ciphertext's CID, lib's capsule)."""
    kdf = KdfParams.fastest()
    meshes = [
        Mesh(await KuboStorage.connect(api), tmp / n, passphrase=lambda _: PASSPHRASE, kdf=kdf)
        for n in ("alice", "bob", "lib")
    ]
    alice, bob, lib = meshes
    try:
        await alice.identity.create("alice")
        bob_id = await bob.identity.create("bob")
        await bob.identity.publish()
        lib_id = await lib.identity.create("lib")
        await lib.identity.publish()
        alice.identity.add_contact("bob", bob_id.did)
        alice.identity.add_contact("lib", lib_id.did)
        f = await alice.files.put("note.bin", os.urandom(SMALL))
        capsule = await alice.share.file(f).with_("bob")
        mine = await alice.share.file(f).with_("lib")
        return capsule.id, f.cid, mine.id
    finally:
        for m in meshes:
            await m.close()


def _wait_agent(home: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited with {proc.returncode}")
        if socket_path(home).exists():
            try:
                status = AgentClient(socket_path(home)).status()
                if status["node"]["up"] and status["http"]:
                    return str(status["http"][0])
            except Exception:
                pass
        time.sleep(0.1)
    raise RuntimeError("the agent did not come up")


async def _small(
    api: str,
    base: str,
    token: str,
    capsule: str,
    cid: str,
    tmp: Path,
    mine: str,
    pids: dict[str, int],
    fresh_for: float,
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    times: dict[str, list[float]] = {"http_open": [], "kubo_cat": [], "library_open": []}
    sides = ("http_open", "kubo_cat", "library_open")
    # CPU seconds per side: this process, the agent, Kubo (each measured around each op).
    cpu = {side: {"bench": 0.0, "agent": 0.0, "kubo": 0.0} for side in sides}
    lib = Mesh(await KuboStorage.connect(api), tmp / "lib", passphrase=lambda _: PASSPHRASE)
    lib.revocations.fresh_for = fresh_for  # the same rule as the agent's
    async with aiohttp.ClientSession() as http:  # one connection pool each: keep-alive
        for i in range(WARMUP + SMALL_ITERATIONS):
            for side in sides[i % 3 :] + sides[: i % 3]:
                c0 = time.process_time(), _cpu_of(pids["agent"]), _cpu_of(pids["kubo"])
                t0 = time.perf_counter()
                if side == "library_open":  # the same open in this process: no HTTP
                    opened = await lib.share.open_capsule(mine)
                    assert len(await opened.read()) == SMALL
                elif side == "http_open":
                    async with http.get(
                        f"{base}/v1/capsules/{capsule}/plaintext", headers=auth
                    ) as r:
                        body = await r.read()
                        assert r.status == 200 and len(body) == SMALL, r.status
                else:
                    async with http.post(f"{api}/api/v0/cat", params={"arg": cid}) as r:
                        body = await r.read()
                        assert r.status == 200 and len(body) > SMALL
                if i >= WARMUP:
                    times[side].append(time.perf_counter() - t0)
                    c1 = time.process_time(), _cpu_of(pids["agent"]), _cpu_of(pids["kubo"])
                    for who, a, b in zip(("bench", "agent", "kubo"), c0, c1, strict=True):
                        cpu[side][who] += b - a
    await lib.close()
    ours, theirs = _summary(times["http_open"]), _summary(times["kubo_cat"])
    library = _summary(times["library_open"])
    ratio = ours["median_ms"] / theirs["median_ms"]
    log(f"1 KiB: http open {ours['median_ms']} ms vs kubo cat {theirs['median_ms']} ms")
    return {
        "size": SMALL,
        "iterations": SMALL_ITERATIONS,
        "revocation_fresh_for_s": fresh_for,
        "http_open": ours,
        "kubo_rpc_cat": theirs,
        "library_open_in_process": library,
        "cpu_ms_per_op": {
            side: {who: round(v / SMALL_ITERATIONS * 1000, 3) for who, v in by.items()}
            for side, by in cpu.items()
        },
        "ratio_of_medians": round(ratio, 2),
        "target_ratio_max": TARGET_SMALL,
        "meets_target": ratio <= TARGET_SMALL,
    }


async def _source(size: int, seed: bytes) -> AsyncIterator[bytes]:
    block = hashlib.sha256(seed).digest() * (PIECE // 32)
    for i in range(size // PIECE):
        yield i.to_bytes(8, "big") + block[8:]


async def _streams(
    api: str, base: str, token: str, tmp: Path, size: int, rounds: int, pids: dict[str, int]
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    lib = Mesh(await KuboStorage.connect(api), tmp / "lib", passphrase=lambda _: PASSPHRASE)
    t: dict[str, list[float]] = {"http_put": [], "lib_put": [], "http_open": [], "lib_open": []}
    # CPU seconds per operation and side: this process, the agent, Kubo.
    cpu: dict[str, dict[str, float]] = {k: {"bench": 0, "agent": 0, "kubo": 0} for k in t}

    def cpu_now() -> tuple[float, float, float]:
        return time.process_time(), _cpu_of(pids["agent"]), _cpu_of(pids["kubo"])

    def count(key: str, before: tuple[float, float, float]) -> None:
        for who, a, b in zip(("bench", "agent", "kubo"), before, cpu_now(), strict=True):
            cpu[key][who] += b - a

    timeout = aiohttp.ClientTimeout(total=3600)
    try:
        keys = await lib.identity.unlock()
        async with aiohttp.ClientSession(timeout=timeout) as http, aiohttp.ClientSession() as rpc:
            for r in range(rounds):
                for side in ("http", "lib") if r % 2 == 0 else ("lib", "http"):
                    seed = f"{side}-{r}".encode()
                    c0 = cpu_now()
                    t0 = time.perf_counter()
                    if side == "http":
                        async with http.post(
                            f"{base}/v1/files",
                            params={"name": "big.bin"},
                            data=_source(size, seed),
                            headers={**auth, "Content-Length": str(size)},
                        ) as resp:
                            assert resp.status == 201, await resp.text()
                            cid = (await resp.json())["content"]
                    else:
                        cid = (await lib.files.put("big.bin", _source(size, seed), size=size)).cid
                    t[f"{side}_put"].append(time.perf_counter() - t0)
                    count(f"{side}_put", c0)
                    n = 0
                    c0 = cpu_now()
                    t0 = time.perf_counter()
                    if side == "http":
                        async with http.get(
                            f"{base}/v1/files/{cid}/plaintext", headers=auth
                        ) as resp:
                            async for piece in resp.content.iter_chunked(PIECE):
                                n += len(piece)
                    else:
                        opened = await lib.files.open(cid, lib.files.file_key(cid, keys.encryption))
                        async for piece in opened:
                            n += len(piece)
                    t[f"{side}_open"].append(time.perf_counter() - t0)
                    count(f"{side}_open", c0)
                    assert n == size, (side, n)
                    await (await rpc.post(f"{api}/api/v0/pin/rm", params={"arg": cid})).read()
                    await (await rpc.post(f"{api}/api/v0/repo/gc")).read()
                    log(
                        f"round {r} {side}: put {t[f'{side}_put'][-1]:.1f} s, "
                        f"open {t[f'{side}_open'][-1]:.1f} s"
                    )
    finally:
        await lib.close()
    out: dict[str, Any] = {"size": size, "rounds": rounds}
    for what in ("put", "open"):
        ours, theirs = _rates(size, t[f"http_{what}"]), _rates(size, t[f"lib_{what}"])
        ratio = ours["median_mib_s"] / theirs["median_mib_s"]
        out[what] = {
            "http": ours,
            "library": theirs,
            "cpu_s_per_gib": {
                side: {
                    who: round(v / rounds / (size / (1 << 30)), 2)
                    for who, v in cpu[f"{side}_{what}"].items()
                }
                for side in ("http", "lib")
            },
            "ratio_of_medians": round(ratio, 2),
            "target_ratio_min": TARGET_STREAM,
            "meets_target": ratio >= TARGET_STREAM,
        }
    return out


def run(args: argparse.Namespace | None = None) -> dict[str, Any]:
    size = getattr(args, "size", None) or 1 << 30  # bytes, as bench.run passes it
    if size > 16 << 30:  # each round writes it to the node twice: a unit mix-up fills the disk
        raise SystemExit(f"bench http: --size is {size} bytes; at most 16 GiB")
    rounds = getattr(args, "rounds", None) or 3
    only = getattr(args, "only", None)
    fresh_for = getattr(args, "fresh_for", None)
    fresh_for = 1.0 if fresh_for is None else fresh_for
    binary = find_kubo() or install_kubo()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-bench-http-") as name:
        tmp = Path(name)
        daemon = KuboDaemon(tmp / "repo", binary)
        daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
        daemon.start()
        try:
            node = daemon.wait_ready(timeout=60)
            capsule, cid, mine = asyncio.run(_people(node.api_url, tmp))
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_SHARE_")}
            agents = []
            try:
                urls = []
                for who in ("bob", "alice"):
                    env = {
                        **base_env,
                        "IPFS_SHARE_HOME": str(tmp / who),
                        "IPFS_SHARE_API": node.api_url,
                        "IPFS_SHARE_PASSPHRASE": PASSPHRASE.decode(),
                    }
                    script = Path(sys.executable).with_name("ipfs-share")
                    proc = subprocess.Popen(
                        [
                            str(script),
                            "serve",
                            "--port",
                            "0",
                            "--log-level",
                            "warning",
                            "--revocation-fresh-for",
                            str(fresh_for),
                        ],
                        env=env,
                        stdin=subprocess.DEVNULL,
                    )
                    agents.append(proc)
                    urls.append(_wait_agent(tmp / who, proc))
                bob_token, alice_token = read_token(tmp / "bob"), read_token(tmp / "alice")
                assert bob_token and alice_token
                kubo_pid = daemon.running_pid()
                assert kubo_pid is not None
                pids = {"agent": agents[0].pid, "kubo": kubo_pid}
                small = streams = None
                if only in (None, "small"):
                    small = asyncio.run(
                        _small(
                            node.api_url,
                            urls[0],
                            bob_token,
                            capsule,
                            cid,
                            tmp,
                            mine,
                            pids,
                            fresh_for,
                        )
                    )
                if only in (None, "streams"):
                    pids = {**pids, "agent": agents[1].pid}  # alice's
                    streams = asyncio.run(
                        _streams(node.api_url, urls[1], alice_token, tmp, size, rounds, pids)
                    )
            finally:
                for proc in agents:
                    os.kill(proc.pid, signal.SIGTERM)
                    proc.wait(30)
        finally:
            daemon.stop()
    return {
        "small_open": small,
        "streams": streams,
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "alternated, same node, same run; the machine may be shared (load_average)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="stream size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, help="stream rounds per side (default 3)")
    parser.add_argument("--only", choices=["small", "streams"], help="run one part alone")
    parser.add_argument(
        "--fresh-for",
        type=float,
        help="the agent's --revocation-fresh-for in seconds (default 1; 0: resolve each open)",
    )
    args = parser.parse_args(argv)
    if args.size is not None:
        args.size <<= 20  # MiB here; run() takes bytes, as bench.run passes them
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
