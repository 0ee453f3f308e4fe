"""The share flow vs plain Kubo and vs the age pipeline, on one fresh daemon, in one run.

Throughput (issue 14), each row as ratios of medians over --rounds rounds, with each
side's spread:

- put: ``mesh.files.put`` of a --size file (encrypt, stream into Kubo, pin, record) vs
  plain ``ipfs add --cid-version=1 --raw-leaves`` of it and vs
  ``age -r KEY FILE | ipfs add ...``; open: ``mesh.share.open_capsule`` as the recipient,
  every leaf verified and all plaintext streamed to /dev/null, vs ``ipfs cat`` of the
  plain file's CID and vs ``ipfs cat CID | age -d -i KEY`` of the age file's.
- Library rows (--size, 1 GiB by default): our side is a worker process timing the
  operation alone (not its start-up); the shell sides have the ``ipfs`` CLI's start-up
  (best of five ``ipfs version``) taken off. Targets: >= 0.95x plain add and plain cat.
- CLI rows (--cli-size, 512 MiB by default): whole commands as a person at a shell runs
  them, start-up included on every side: ``ipfs-share put FILE`` and
  ``ipfs-share open CAPSULE > /dev/null``. Targets: >= 0.9x plain, >= 1.1x the age pipeline.
  The package's bytecode is compiled first, as an installed copy has it
  (:mod:`bench.installed`).
- Every add is of fresh bytes (32 new random bytes at the start of every leaf before each
  add: no dedup, the page cache the same for all), and its pin is removed and the repo
  garbage-collected after, so every add writes every block. Rounds rotate the order of
  the sides. Peak RSS is VmHWM from /proc (sampled every 10 ms for the shell sides); the
  CPU seconds of each side and of the daemon meanwhile are reported too: on a small
  machine our process and Kubo compete for the same cores. The load average at the start
  and the end is recorded: the machine may be shared.
- age comes from Debian's package (``apt-get install age``); without it the age columns
  are skipped with a note.

Also (issue 5): share to 1,000 recipients < 1 s, only the ``share.file(f).with_(names)``
call timed, the recipients contacts whose identity documents are already verified and
cached; and open of a 1 KiB file < 3x an in-process HTTP ``cat`` of its ciphertext (both
timed per call over many alternated iterations), with the whole ``ipfs cat`` CLI process
as a second ratio.

Bench identities use ``KdfParams.fastest()``: the passphrase KDF runs at every unlock and
is not what is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.installed import compile_package
from bench.pipelines import Round, cpu_seconds, run_pipeline, stamp
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
SIDES = ("plain", "age", "ours")

TARGETS = {
    "library_put_vs_plain_min": 0.95,
    "library_open_vs_plain_min": 0.95,
    "cli_put_vs_plain_min": 0.9,
    "cli_open_vs_plain_min": 0.9,
    "cli_put_vs_age_min": 1.1,
    "cli_open_vs_age_min": 1.1,
    "peak_rss_max_MiB": 100,
    "share_1000_max_s": 1.0,
    "open_1KiB_ratio_max": 3.0,
}


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
            cli_size = getattr(args, "cli_size", None) or min(args.size, 512 << 20)
            return bench.measure(args.size, cli_size, max(1, args.rounds))
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
        self.cli = str(Path(sys.executable).with_name("ipfs-share"))
        self.age = shutil.which("age")
        self.age_key = tmpdir / "age.key"
        self.age_recipient = ""
        self.cli_startup = 0.0

    def env_of(self, home: Path) -> dict[str, str]:
        return dict(
            self.env,
            IPFS_SHARE_HOME=str(home),
            IPFS_SHARE_API=self.url,
            IPFS_SHARE_PASSPHRASE=PASSPHRASE.decode(),
        )

    def gc(self, cid: str) -> None:
        subprocess.run([*self.ipfs, "pin", "rm", cid], capture_output=True, env=self.env)
        subprocess.run(
            [*self.ipfs, "repo", "gc", "--quiet"], capture_output=True, env=self.env, check=True
        )

    def worker(self, home: Path, op: str, arg: str) -> tuple[str, Round]:
        """Run one worker op: its result, and its own seconds, peak RSS and CPU."""
        cmd = [sys.executable, "-m", "bench.share_worker", self.url, str(home), op, arg]
        kubo_before = cpu_seconds(self.kubo_pid)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        kubo = cpu_seconds(self.kubo_pid) - kubo_before
        result, seconds, peak, cpu = out.splitlines()[-1].split()
        return result, Round(float(seconds), int(peak), float(cpu), kubo)

    # -- one side of a row ----------------------------------------------------------------
    def put(self, side: str, path: Path, *, cli: bool) -> tuple[str, Round]:
        """Add ``path`` (made fresh bytes first) one way; its CID and the round."""
        stamp(path)
        add = [*self.ipfs, "add", "-Q", "--cid-version=1", "--raw-leaves"]
        less = 0.0 if cli else self.cli_startup
        if side == "plain":
            out, done = run_pipeline(
                [[*add, str(path)]], env=self.env, kubo_pid=self.kubo_pid, less=less
            )
        elif side == "age":
            assert self.age is not None
            pipeline = [[self.age, "-r", self.age_recipient, str(path)], add]
            out, done = run_pipeline(pipeline, env=self.env, kubo_pid=self.kubo_pid, less=less)
        elif cli:
            env = self.env_of(self.alice)
            out, done = run_pipeline(
                [[self.cli, "put", str(path)]], env=env, kubo_pid=self.kubo_pid, quiet=True
            )
        else:
            return self.worker(self.alice, "put", str(path))
        return out.split()[-1], done

    def open(self, side: str, content: str, *, cli: bool, size: int) -> Round:
        """Read ``content`` one way (a CID, or for ours a capsule), output to /dev/null."""
        less = 0.0 if cli else self.cli_startup
        if side == "plain":
            pipeline = [[*self.ipfs, "cat", content]]
        elif side == "age":
            assert self.age is not None
            pipeline = [[*self.ipfs, "cat", content], [self.age, "-d", "-i", str(self.age_key)]]
        elif cli:
            env = self.env_of(self.bob)
            _, done = run_pipeline(
                [[self.cli, "open", content]], env=env, kubo_pid=self.kubo_pid, discard=True
            )
            return done
        else:
            count, done = self.worker(self.bob, "open", content)
            if int(count) != size:
                raise RuntimeError(f"open returned {count} bytes, expected {size}")
            return done
        _, done = run_pipeline(
            pipeline, env=self.env, kubo_pid=self.kubo_pid, discard=True, less=less
        )
        return done

    # -- the run --------------------------------------------------------------------------
    def measure(self, size: int, cli_size: int, rounds: int) -> dict[str, Any]:
        load_start = os.getloadavg()
        bytecode = compile_package()
        asyncio.run(self.setup_people())
        self.cli_startup = min(_timed([*self.ipfs, "version"], self.env)[0] for _ in range(5))
        sides = [s for s in SIDES if s != "age" or self.age]
        if self.age:
            keygen = subprocess.run(
                [str(Path(self.age).with_name("age-keygen")), "-o", str(self.age_key)],
                capture_output=True,
                text=True,
                check=True,
            )
            self.age_recipient = keygen.stderr.strip().rpartition(" ")[2]
        else:
            log("age not found: the age columns are skipped (apt-get install age)")
        rows = {}
        for label, nbytes, cli in (("library", size, False), ("cli", cli_size, True)):
            path = self.tmpdir / f"{label}.bin"
            log(f"{label}: writing {nbytes} random bytes")
            _write_file(path, nbytes)
            rows[label] = self.throughput(path, nbytes, rounds, sides, cli=cli)
            path.unlink()
        share_1000 = asyncio.run(self.measure_share_1000())
        small, small_content = asyncio.run(self.measure_small_open())
        small["cli_cat"] = self.measure_cli_cat(small_content, small["ours_median_ms"])
        lib, cli_rows = rows["library"], rows["cli"]
        met = {
            "library_put_vs_plain": lib["put"]["ours_vs_plain"]
            >= TARGETS["library_put_vs_plain_min"],
            "library_open_vs_plain": lib["open"]["ours_vs_plain"]
            >= TARGETS["library_open_vs_plain_min"],
            "cli_put_vs_plain": cli_rows["put"]["ours_vs_plain"] >= TARGETS["cli_put_vs_plain_min"],
            "cli_open_vs_plain": cli_rows["open"]["ours_vs_plain"]
            >= TARGETS["cli_open_vs_plain_min"],
            "library_peak_rss": max(
                lib["put"]["ours"]["peak_rss_MiB"], lib["open"]["ours"]["peak_rss_MiB"]
            )
            < TARGETS["peak_rss_max_MiB"],
            "share_1000": share_1000["median_s"] < TARGETS["share_1000_max_s"],
            "open_1KiB": small["ratio_vs_http_cat"] < TARGETS["open_1KiB_ratio_max"],
        }
        if self.age:
            met["cli_put_vs_age"] = cli_rows["put"]["ours_vs_age"] >= TARGETS["cli_put_vs_age_min"]
            met["cli_open_vs_age"] = (
                cli_rows["open"]["ours_vs_age"] >= TARGETS["cli_open_vs_age_min"]
            )
        return {
            "entry": "share",
            "size_bytes": size,
            "cli_size_bytes": cli_size,
            "rounds": rounds,
            "cpu_count": os.cpu_count(),
            "load_average": {"start": load_start, "end": os.getloadavg()},
            "kdf": "fastest (argon2id minimum; the KDF is not measured)",
            "bytecode": bytecode,
            "ipfs_cli_startup_s": round(self.cli_startup, 3),
            "age": self.age or "not installed: age columns skipped",
            "ratios": "X_vs_Y = median seconds of Y / median seconds of ours (above 1: ours is "
            "faster); spread = the lowest and highest of the per-round ratios",
            "library": lib,
            "cli": cli_rows,
            "share_1000": share_1000,
            "open_1KiB": small,
            "targets": TARGETS,
            "met": met,
        }

    def throughput(
        self, path: Path, size: int, rounds: int, sides: list[str], *, cli: bool
    ) -> dict[str, Any]:
        """The put and open rows for one file: ``rounds`` rounds of every side."""
        label = "cli" if cli else "library"
        puts: dict[str, list[Round]] = {s: [] for s in sides}
        for r in range(rounds):
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                cid, done = self.put(side, path, cli=cli)
                puts[side].append(done)
                self.log_round(f"{label} put {side}", done, size)
                self.gc(cid)
        # What the opens read, added once more (not counted), fresh bytes like the rest.
        contents = {side: self.put(side, path, cli=cli)[0] for side in sides}
        contents["ours"] = asyncio.run(self.share(contents["ours"], ["bob"]))
        opens: dict[str, list[Round]] = {s: [] for s in sides}
        for r in range(rounds):
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                done = self.open(side, contents[side], cli=cli, size=size)
                opens[side].append(done)
                self.log_round(f"{label} open {side}", done, size)
        for side in sides:
            if side != "ours":
                self.gc(contents[side])
        return {"put": _row(puts, size), "open": _row(opens, size)}

    def log_round(self, name: str, done: Round, size: int) -> None:
        log(
            f"{name}: {done.seconds:.2f}s ({size / done.seconds / (1 << 20):.0f} MiB/s), "
            f"cpu {done.cpu:.2f}s, kubo cpu {done.kubo_cpu:.2f}s, peak {done.peak_rss >> 20} MiB"
        )

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


def _row(rounds: dict[str, list[Round]], size: int) -> dict[str, Any]:
    """Each side's median, spread, peak RSS and CPU; ours against each other side."""
    mib = size / (1 << 20)
    row: dict[str, Any] = {}
    for side, done in rounds.items():
        times = [r.seconds for r in done]
        row[side] = {
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
            "median_MiB_s": round(mib / statistics.median(times), 1),
            "peak_rss_MiB": round(max(r.peak_rss for r in done) / (1 << 20), 1),
            "cpu_s_median": round(statistics.median(r.cpu for r in done), 2),
            "kubo_cpu_s_median": round(statistics.median(r.kubo_cpu for r in done), 2),
        }
    ours = rounds["ours"]
    for side, done in rounds.items():
        if side == "ours":
            continue
        per_round = [o.seconds and d.seconds / o.seconds for d, o in zip(done, ours, strict=True)]
        row[f"ours_vs_{side}"] = round(
            statistics.median(r.seconds for r in done) / statistics.median(r.seconds for r in ours),
            3,
        )
        row[f"ours_vs_{side}_spread"] = [round(min(per_round), 3), round(max(per_round), 3)]
    return row


if __name__ == "__main__":
    print(run(argparse.Namespace(size=1 << 28, cli_size=1 << 27, rounds=1)))
