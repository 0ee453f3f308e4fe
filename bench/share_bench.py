"""The share flow vs plain Kubo, on one fresh daemon, in the same run.

Four measurements (targets from issue 5):

- put: ``mesh.files.put`` of a --size file (encrypt, stream into Kubo, pin, record) vs
  plain ``ipfs add --cid-version=1 --raw-leaves`` of the same file on the same node.
  Throughput ratio >= 0.85x; peak RSS of our process < 100 MiB. Between adds the pin is
  removed and the repo garbage-collected, so every add writes every block.
- open: ``mesh.share.open_capsule`` of a capsule for that file, as the recipient, with all
  plaintext streamed to /dev/null, vs plain ``ipfs cat`` of the ciphertext's CID to
  /dev/null. Ratio >= 0.85x; peak RSS < 100 MiB.
- share to 1,000 recipients < 1 s: only the ``share.file(f).with_(names)`` call is timed.
  The recipients are contacts whose identity documents are already verified and cached
  (made cheaply: keys generated, documents and IPNS records put in an embedded store, and
  each resolved through ``IdentityService.resolve`` into the sharer's home).
- open of a 1 KiB file from a capsule on the local node < 3x ``ipfs cat`` of the same
  ciphertext. Both are timed in this process, per call, over many alternated iterations:
  our ``open_capsule`` + ``read()`` against an HTTP ``cat`` of the ciphertext through
  aiohttp to the same node (the ratio's baseline: same process, same kind of connection).
  For a person at a shell the whole ``ipfs cat`` CLI process is reported too, as a second
  ratio.

Put and open run as in the storage bench: each side in a fresh process, the worker timing
itself in-process and the plain side's wall time less the ``ipfs`` CLI's start-up (best of
five ``ipfs version``), rounds alternating sides, the best of each kept. Peak RSS is VmHWM
from /proc: the worker reads its own at the end, the plain side's is sampled every 10 ms.
(Not ru_maxrss from wait4: Linux carries the parent's peak RSS into a child across
fork/vfork and exec, so every child would report at least this bench's own peak.) The CPU
seconds of each side and of the daemon meanwhile are reported too: on a small machine the
the Python process and Kubo compete for the same cores.

Bench identities use ``KdfParams.fastest()``: the passphrase KDF runs at every unlock and
is not what is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.share_worker import KDF, PASSPHRASE
from bench.storage_bench import _timed, _timed_cat_plain, _write_file  # same timing as there
from ipfs_share.client import Mesh, connect
from ipfs_share.formats.identity_doc import make_identity_document
from ipfs_share.formats.ipns import ipns_name, make_record
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.node.ports import NodePorts, free_port
from ipfs_share.services.identities import IdentityService
from ipfs_share.storage.embedded import EmbeddedStorage

RECIPIENTS = 1000
SHARE_ROUNDS = 5
SMALL_SIZE = 1024
SMALL_ITERATIONS = 300
CLI_ITERATIONS = 30

TARGETS = {
    "put_ratio_min": 0.85,
    "open_ratio_min": 0.85,
    "peak_rss_max_MiB": 100,
    "share_1000_max_s": 1.0,
    "open_1KiB_ratio_max": 3.0,
}


def _vm_hwm(pid: int) -> int:
    """The peak RSS so far of a running process, in bytes (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Round:
    seconds: float
    peak_rss: int  # bytes
    cpu: float  # CPU seconds of the measured process (the worker's op alone, or the CLI)
    kubo_cpu: float  # CPU seconds the daemon used meanwhile


def log(message: str) -> None:
    print(f"bench share: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = find_kubo() or install_kubo()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-bench-") as tmp:
        tmpdir = Path(tmp)
        daemon = KuboDaemon(tmpdir / "repo", binary)
        daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
        daemon.start()
        try:
            node = daemon.wait_ready(timeout=60)
            bench = ShareBench(node.api_multiaddr, node.api_url, node.pid, binary, tmpdir)
            return bench.measure(args.size, args.rounds)
        finally:
            daemon.stop()


async def _mesh(api: str, home: Path) -> Mesh:
    return await connect(api, home=home, passphrase=lambda _: PASSPHRASE, kdf=KDF)


class ShareBench:
    def __init__(self, api: str, url: str, kubo_pid: int, binary: Path, tmpdir: Path) -> None:
        self.api = api
        self.url = url
        self.kubo_pid = kubo_pid
        self.tmpdir = tmpdir
        self.alice = tmpdir / "alice"
        self.bob = tmpdir / "bob"
        self.ipfs = [str(binary), "--api", api]
        self.env = dict(os.environ, IPFS_PATH=str(tmpdir / "repo"))
        self.rounds: dict[str, list[Round]] = {}

    # -- plumbing -------------------------------------------------------------------------
    def keep(self, name: str, done: Round, size: int) -> None:
        self.rounds.setdefault(name, []).append(done)
        log(
            f"{name.replace('_', ' ')}: {done.seconds:.2f}s ({size / done.seconds / (1 << 20):.0f}"
            f" MiB/s), cpu {done.cpu:.2f}s, kubo cpu {done.kubo_cpu:.2f}s, "
            f"peak {done.peak_rss >> 20} MiB"
        )

    def summary(self, name: str, size: int) -> dict[str, Any]:
        """The best round of each side (by time), and the highest peak RSS of any round."""
        plain = min(self.rounds[f"{name}_plain"], key=lambda r: r.seconds)
        ours = min(self.rounds[f"{name}_ours"], key=lambda r: r.seconds)
        mib = size / (1 << 20)
        return {
            "plain_MiB_s": round(mib / plain.seconds, 1),
            "ours_MiB_s": round(mib / ours.seconds, 1),
            "ratio": round(plain.seconds / ours.seconds, 3),
            "ours_peak_rss_MiB": round(
                max(r.peak_rss for r in self.rounds[f"{name}_ours"]) / (1 << 20), 1
            ),
            "plain_peak_rss_MiB": round(
                max(r.peak_rss for r in self.rounds[f"{name}_plain"]) / (1 << 20), 1
            ),
            "cpu_s": {
                "ours_process": round(ours.cpu, 2),
                "kubo_during_ours": round(ours.kubo_cpu, 2),
                "plain_cli": round(plain.cpu, 2),
                "kubo_during_plain": round(plain.kubo_cpu, 2),
            },
        }

    def gc(self, cid: str) -> None:
        subprocess.run([*self.ipfs, "pin", "rm", cid], capture_output=True, env=self.env)
        subprocess.run(
            [*self.ipfs, "repo", "gc", "--quiet"], capture_output=True, env=self.env, check=True
        )

    def worker(self, home: Path, op: str, arg: str) -> tuple[str, Round]:
        """Run one worker op: its result, and its own seconds, peak RSS and CPU."""
        cmd = [sys.executable, "-m", "bench.share_worker", self.url, str(home), op, arg]
        kubo_before = _cpu_seconds(self.kubo_pid)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        kubo = _cpu_seconds(self.kubo_pid) - kubo_before
        result, seconds, peak, cpu = out.splitlines()[-1].split()
        return result, Round(float(seconds), int(peak), float(cpu), kubo)

    def plain(self, args: list[str]) -> tuple[str, Round]:
        """Run ``ipfs ARGS`` (a cat's output goes to /dev/null): its stdout, and its seconds
        less the CLI's start-up, its peak RSS (sampled from /proc) and its CPU."""
        sink = subprocess.DEVNULL if args[0] == "cat" else subprocess.PIPE
        kubo_before, cli_before = _cpu_seconds(self.kubo_pid), _children_cpu()
        start = time.perf_counter()
        proc = subprocess.Popen([*self.ipfs, *args], stdout=sink, env=self.env)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _vm_hwm(proc.pid))
            time.sleep(0.01)
        elapsed = time.perf_counter() - start - self.cli_startup
        kubo = _cpu_seconds(self.kubo_pid) - kubo_before
        cli = _children_cpu() - cli_before  # poll() reaped it, so its CPU is counted
        out = proc.stdout.read().decode() if proc.stdout else ""
        if proc.returncode != 0:
            raise RuntimeError(f"ipfs {args[0]} failed with exit code {proc.returncode}")
        return out, Round(elapsed, peak, cli, kubo)

    # -- the run --------------------------------------------------------------------------
    def measure(self, size: int, rounds: int) -> dict[str, Any]:
        path = self.tmpdir / "data.bin"
        log(f"writing {size} random bytes")
        _write_file(path, size)
        asyncio.run(self.setup_people())
        self.cli_startup = min(_timed([*self.ipfs, "version"], self.env)[0] for _ in range(5))

        content = self.measure_put(path, size, rounds)
        self.measure_open(content, size, rounds)
        share_1000 = asyncio.run(self.measure_share_1000())
        small, small_content = asyncio.run(self.measure_small_open())
        small["cli_cat"] = self.measure_cli_cat(small_content, small["ours_median_ms"])

        put, open_ = self.summary("put", size), self.summary("open", size)
        return {
            "entry": "share",
            "size_bytes": size,
            "rounds": rounds,
            "cpu_count": os.cpu_count(),
            "kdf": "fastest (argon2id minimum; the KDF is not measured)",
            "ipfs_cli_startup_s": round(self.cli_startup, 3),
            "put": put,
            "open": open_,
            "share_1000": share_1000,
            "open_1KiB": small,
            "targets": TARGETS,
            "met": {
                "put_ratio": put["ratio"] >= TARGETS["put_ratio_min"],
                "put_rss": put["ours_peak_rss_MiB"] < TARGETS["peak_rss_max_MiB"],
                "open_ratio": open_["ratio"] >= TARGETS["open_ratio_min"],
                "open_rss": open_["ours_peak_rss_MiB"] < TARGETS["peak_rss_max_MiB"],
                "share_1000": share_1000["median_s"] < TARGETS["share_1000_max_s"],
                "open_1KiB": small["ratio_vs_http_cat"] < TARGETS["open_1KiB_ratio_max"],
            },
        }

    async def setup_people(self) -> None:
        """Alice (the sharer) and Bob (the recipient), each in a home of their own."""
        async with (
            await _mesh(self.api, self.alice) as alice,
            await _mesh(self.api, self.bob) as bob,
        ):
            await alice.identity.create("alice")
            bob_id = await bob.identity.create("bob")
            await bob.identity.publish()
            await alice.identity.resolve(bob_id.did, petname="bob")

    def measure_put(self, path: Path, size: int, rounds: int) -> str:
        """Alternating rounds of plain add and our put, each GC'd after; return the CID of
        one more put of ours, kept for the open measurement."""
        plain_add = ["add", "-Q", "--cid-version=1", "--raw-leaves", str(path)]
        for r in range(rounds):
            for side in ("plain", "ours") if r % 2 == 0 else ("ours", "plain"):
                if side == "plain":
                    out, done = self.plain(plain_add)
                    cid = out.splitlines()[-1]
                else:
                    cid, done = self.worker(self.alice, "put", str(path))
                self.keep(f"put_{side}", done, size)
                self.gc(cid)
        # One more put, kept for the open; not counted (it follows no plain round).
        cid, done = self.worker(self.alice, "put", str(path))
        log(f"put ours, kept for the open: {done.seconds:.2f}s (not counted)")
        return cid

    def measure_open(self, content: str, size: int, rounds: int) -> None:
        capsule = asyncio.run(self.share(content, ["bob"]))
        for r in range(rounds):
            for side in ("plain", "ours") if r % 2 == 0 else ("ours", "plain"):
                if side == "plain":
                    _, done = self.plain(["cat", content])
                else:
                    count, done = self.worker(self.bob, "open", capsule)
                    if int(count) != size:
                        raise RuntimeError(f"open returned {count} bytes, expected {size}")
                self.keep(f"open_{side}", done, size)

    async def share(self, content: str, names: list[str]) -> str:
        async with await _mesh(self.api, self.alice) as alice:
            return (await alice.share.file(content).with_(names)).id

    async def add_contacts(self, count: int) -> list[str]:
        """``count`` new identities as Alice's contacts, their documents verified and cached.

        Keys are generated and their documents and IPNS records put in an embedded store
        (no keystore, no KDF: only the public side matters here); Alice resolves each one
        from there with ``IdentityService.resolve``, which verifies and caches it."""
        names = []
        now = datetime.now(UTC)
        async with EmbeddedStorage(self.tmpdir / "directory") as store:
            resolver = IdentityService(self.alice, store, passphrase=lambda _: PASSPHRASE)
            try:
                for i in range(count):
                    keys = IdentityKeys.generate()
                    doc = make_identity_document(
                        keys.signing, keys.enc_public, seq=0, created=int(now.timestamp())
                    )
                    cid = await store.block_put(doc.data, codec="dag-cbor")
                    record = make_record(
                        keys.signing,
                        f"/ipfs/{cid}",
                        sequence=0,
                        validity=timedelta(days=1),
                        ttl_seconds=60,
                        now=now,
                    )
                    await store.ipns_put(ipns_name(keys.signing.public_key), record)
                    name = f"r{i:04d}"
                    await resolver.resolve(keys.did, petname=name)
                    names.append(name)
            finally:
                resolver.db.close()
        return names

    async def measure_share_1000(self) -> dict[str, Any]:
        log(f"making {RECIPIENTS} contacts")
        names = await self.add_contacts(RECIPIENTS)
        times = []
        async with await _mesh(self.api, self.alice) as alice:
            file = await alice.files.put("small.bin", b"s" * SMALL_SIZE)
            await alice.share.file(file).with_("bob")  # the first share publishes; not timed
            for _ in range(SHARE_ROUNDS):
                start = time.perf_counter()
                capsule = await alice.share.file(file).with_(names)
                times.append(time.perf_counter() - start)
                log(f"share to {len(capsule.recipients)}: {times[-1] * 1000:.0f} ms")
            size = len(await alice.storage.block_get(capsule.id))
        return {
            "recipients": RECIPIENTS,
            "capsule_bytes": size,
            "rounds": SHARE_ROUNDS,
            "best_s": round(min(times), 3),
            "median_s": round(statistics.median(times), 3),
            "target_on": "median",
        }

    async def measure_small_open(self) -> tuple[dict[str, Any], str]:
        """Ours (open_capsule + read) vs an HTTP cat of the ciphertext, alternated."""
        async with await _mesh(self.api, self.alice) as alice:
            file = await alice.files.put("note.bin", bytes(range(256)) * (SMALL_SIZE // 256))
            capsule = (await alice.share.file(file).with_("bob")).id
        ours: list[float] = []
        plain: list[float] = []
        cat_url = f"{self.url}/api/v0/cat"
        async with await _mesh(self.api, self.bob) as bob, aiohttp.ClientSession() as http:
            for i in range(SMALL_ITERATIONS + 10):  # the first 10 of each warm up
                for side in ("ours", "plain") if i % 2 == 0 else ("plain", "ours"):
                    start = time.perf_counter()
                    if side == "ours":
                        opened = await bob.share.open_capsule(capsule)
                        data = await opened.read()
                    else:
                        async with http.post(cat_url, params={"arg": file.cid}) as resp:
                            data = await resp.read()
                    elapsed = time.perf_counter() - start
                    if i >= 10:
                        (ours if side == "ours" else plain).append(elapsed)
                    if side == "ours" and len(data) != SMALL_SIZE:
                        raise RuntimeError(f"opened {len(data)} bytes, expected {SMALL_SIZE}")
        ours_ms = statistics.median(ours) * 1000
        plain_ms = statistics.median(plain) * 1000
        result = {
            "iterations": SMALL_ITERATIONS,
            "ours_median_ms": round(ours_ms, 3),
            "ours_p90_ms": round(statistics.quantiles(ours, n=10)[-1] * 1000, 3),
            "http_cat_median_ms": round(plain_ms, 3),
            "ratio_vs_http_cat": round(ours_ms / plain_ms, 2),
            "baseline": "ratio_vs_http_cat: the same process's HTTP cat of the ciphertext "
            "(aiohttp, keep-alive) to the same node; the target applies to it",
        }
        return result, file.cid

    def measure_cli_cat(self, content: str, ours_ms: float) -> dict[str, Any]:
        """The whole `ipfs cat` CLI process, as a person at a shell sees it."""
        times = [_timed_cat_plain(self.ipfs, content, self.env)[0] for _ in range(CLI_ITERATIONS)]
        version = [_timed([*self.ipfs, "version"], self.env)[0] for _ in range(CLI_ITERATIONS)]
        cli_ms = statistics.median(times) * 1000
        return {
            "median_ms": round(cli_ms, 3),
            "ipfs_version_median_ms": round(statistics.median(version) * 1000, 3),
            "ratio_ours_vs_cli_process": round(ours_ms / cli_ms, 2),
            "note": "nearly all of a CLI cat is the CLI's own start-up (compare ipfs version)",
        }


if __name__ == "__main__":
    print(run(argparse.Namespace(size=1 << 28, rounds=1)))
