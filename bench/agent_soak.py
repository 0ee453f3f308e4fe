"""The agent's memory over a long run on loopback: does it stay flat?

One fresh node, two homes. Bob's agent runs as its own process (``ipfs-share serve``);
this script is everyone else, in a bounded loop until ``--duration`` seconds have passed:

- alice shares a small file with bob and sends the capsule, every ``--send-every`` s (bob's
  agent takes it from a pubsub notice, syncs, acknowledges);
- a capsule sent a few seconds before is opened through the agent (the command line's
  delegated path), every 2 s, and its bytes checked; the status is asked for too;
- a stranger (a fresh did each time) introduces itself to bob, every 5 s (rate limits,
  the pending cap, the replay memory all get exercised);
- an event-stream subscriber connects, reads the last events, and leaves, every 10 s;
- a delegated operation (``identity publish``) runs every 60 s.

Nothing asks for a list that grows with the run (the whole inbox, say): what is measured
is what the agent keeps, not the size of its answers.

The agent's resident memory (VmRSS, /proc) is sampled every 10 s. Reported: RSS at the
start (after a warm-up of a tenth of the run, at most 60 s), at the end, the peak, and
the counts of what was done. Run: ``python -m bench.agent_soak --duration 3600``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from bench.agent_bench import _ipfs_share, _wait_agent
from ipfs_share.agent.files import socket_path
from ipfs_share.agent.remote import AgentClient
from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.formats.introduction import introduction_topic, make_introduction
from ipfs_share.node.daemon import KuboDaemon
from ipfs_share.node.install import find_kubo, install_kubo
from ipfs_share.node.ports import NodePorts, free_port
from ipfs_share.storage.kubo import KuboStorage

PASSPHRASE = b"soak"
SAMPLE_EVERY = 10.0
# Flat: the fitted growth over the run's second half stays under this. Warm-up fills the
# agent's bounded structures (caches, the event ring, SQLite's page caches) during the first
# half; what still grows in the second half is what is not bounded.
FLAT_BOUND_MIB = 2.0


def log(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


def rss(pid: int) -> int:
    """Resident memory of ``pid`` now, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def rss_parts(pid: int) -> dict[str, int]:
    """Where the resident memory of ``pid`` is, in bytes: ``heap`` (the brk heap: glibc's
    main arena), ``anon`` (other anonymous mappings: Python's object arenas, other malloc
    arenas, large blocks), ``file`` (the interpreter, libraries, mapped files)."""
    parts = {"heap": 0, "anon": 0, "file": 0}
    kind = "anon"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(maxsplit=6)
            if "-" in first[0] and len(first) >= 5 and ":" in first[3]:  # a mapping's header
                name = first[5].strip() if len(first) > 5 else ""
                kind = "heap" if name == "[heap]" else "file" if name.startswith("/") else "anon"
            elif line.startswith("Rss:"):
                parts[kind] += int(line.split()[1]) * 1024
    return parts


def slope(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of ``points`` (x, y), in y per x.

    >>> slope([(0, 1.0), (1, 3.0), (2, 5.0)])
    2.0
    """
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def _sse_once(home: Path, last_id: int = 0) -> int:
    """Connect to the event stream, read what comes within a moment, leave."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    s.connect(str(socket_path(home)))
    request = f"GET /v1/events?last_id={last_id} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    s.sendall(request.encode())
    got = 0
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
    except TimeoutError:
        pass
    finally:
        s.close()
    return got


async def soak(
    duration: float, send_every: float, tmp: Path, api: str, trace: float = 0
) -> dict[str, Any]:
    plain = b"soak " * 200
    alice = Mesh(
        await KuboStorage.connect(api),
        tmp / "alice",
        passphrase=lambda _: PASSPHRASE,
        kdf=KdfParams.fastest(),
    )
    bob = Mesh(
        await KuboStorage.connect(api),
        tmp / "bob",
        passphrase=lambda _: PASSPHRASE,
        kdf=KdfParams.fastest(),
    )
    await alice.identity.create("alice")
    bob_id = await bob.identity.create("bob")
    await bob.identity.publish()
    alice.identity.add_contact("bob", bob_id.did)
    bob.identity.add_contact("alice", alice.identity.get().did)
    bob_enc = bob.identity.keystore.get("bob").enc
    await bob.close()
    f = await alice.files.put("soak.txt", plain)

    env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_SHARE_")}
    env.update(IPFS_SHARE_HOME=str(tmp / "bob"), IPFS_SHARE_API=api, IPFS_SHARE_PASSPHRASE="soak")
    if trace:
        env["IPFS_SHARE_TRACEMALLOC"] = str(trace)
    agent = _start_agent(env, tmp / "agent.log")
    counts = {"sent": 0, "opened": 0, "introductions": 0, "event_reads": 0, "status": 0, "ops": 0}
    samples: list[tuple[float, int, dict[str, int]]] = []
    client = AgentClient(socket_path(tmp / "bob"))
    topic = introduction_topic(bob_id.did)
    sent: deque[tuple[float, str]] = deque(maxlen=16)
    try:
        await asyncio.to_thread(_wait_agent, tmp / "bob", agent)
        start = time.monotonic()
        deadline = start + duration
        next_at = {
            "send": start,
            "open": start + 1,
            "intro": start + 2,
            "sse": start + 3,
            "op": start + 30,
        }
        next_sample = start
        last_event = 0
        while (now := time.monotonic()) < deadline:
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode}")
            if now >= next_sample:
                samples.append((round(now - start, 1), rss(agent.pid), rss_parts(agent.pid)))
                next_sample += SAMPLE_EVERY
            if now >= next_at["send"]:
                capsule = await alice.share.file(f).with_("bob")
                await alice.share.send(capsule)
                sent.append((now, capsule.id))
                counts["sent"] += 1
                next_at["send"] += send_every
            if now >= next_at["open"]:
                status = await asyncio.to_thread(client.status)
                last_event = int(status["events"]["last_id"])
                counts["status"] += 1
                old = [c for t, c in sent if now - t >= 4.0]
                if old:
                    opened = await asyncio.to_thread(client.open, old[-1])
                    if b"".join(opened.chunks()) != plain:
                        raise RuntimeError("an open through the agent gave other bytes")
                    counts["opened"] += 1
                next_at["open"] += 2
            if now >= next_at["intro"]:
                message = make_introduction(
                    SigningKey.generate(), bob_id.did, bob_enc, sent=int(time.time())
                )
                await alice.storage.pubsub_publish(topic, message)
                counts["introductions"] += 1
                next_at["intro"] += 5
            if now >= next_at["sse"]:
                read = await asyncio.to_thread(_sse_once, tmp / "bob", max(0, last_event - 20))
                counts["event_reads"] += read
                next_at["sse"] += 10
            if now >= next_at["op"]:
                await asyncio.to_thread(client.operation, "publish", {})
                counts["ops"] += 1
                next_at["op"] += 60
            await asyncio.sleep(max(0.01, min(next_at.values()) - time.monotonic()))
        samples.append((round(time.monotonic() - start, 1), rss(agent.pid), rss_parts(agent.pid)))
        final = await asyncio.to_thread(client.status)
    finally:
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGTERM)
            agent.wait(30)
        await alice.close()
    return {
        "duration_s": duration,
        "send_every_s": send_every,
        "counts": counts,
        "agent_received": final["counts"]["capsules_received"],
        "introductions_at_agent": final["introductions"],
        **flatness(samples, duration),
        "agent_exit": agent.returncode,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def flatness(samples: list[tuple[float, int, dict[str, int]]], duration: float) -> dict[str, Any]:
    """RSS at the start (after the warm-up), the end, the peak; the least-squares slope over
    the second half and the growth it amounts to over that half; the verdict against
    :data:`FLAT_BOUND_MIB`; and where the memory is (heap, anon, file) at regular points."""
    mib = float(1 << 20)
    warm = min(60.0, duration / 10)
    after = [(t, r) for t, r, _ in samples if t >= warm] or [samples[-1][:2]]
    half = [(t / 60, r / mib) for t, r, _ in samples if t >= duration / 2]
    per_min = slope(half)
    half_growth = per_min * (duration / 2) / 60
    picked = samples[:: max(1, len(samples) // 24)]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return {
        "rss_first_sample_MiB": round(samples[0][1] / mib, 1),
        "warmup_s": warm,
        "rss_start_MiB": round(after[0][1] / mib, 1),
        "rss_half_MiB": round(half[0][1], 1) if half else None,
        "rss_end_MiB": round(after[-1][1] / mib, 1),
        "rss_peak_MiB": round(max(r for _, r in after) / mib, 1),
        "second_half_slope_MiB_per_min": round(per_min, 4),
        "second_half_growth_MiB": round(half_growth, 2),
        "flat_bound_MiB": FLAT_BOUND_MIB,
        "flat": abs(half_growth) < FLAT_BOUND_MIB,
        "samples_MiB": [
            {"t": t, "rss": round(r / mib, 1), **{k: round(v / mib, 1) for k, v in parts.items()}}
            for t, r, parts in picked
        ],
    }


def _start_agent(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("wb") as err:
        return subprocess.Popen(
            [_ipfs_share(), "serve", "--log-level", "warning", "--port", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=err,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = find_kubo() or install_kubo()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-soak-") as name:
        tmp = Path(name)
        daemon = KuboDaemon(tmp / "repo", binary)
        daemon.init(ports=NodePorts(api=free_port(), gateway=free_port(), swarm=free_port()))
        daemon.start()
        try:
            node = daemon.wait_ready(timeout=60)
            return asyncio.run(soak(args.duration, args.send_every, tmp, node.api_url, args.trace))
        finally:
            daemon.stop()
            if args.trace and args.trace_out:
                shutil.copytree(tmp / "bob" / "memtrace", args.trace_out, dirs_exist_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--send-every", type=float, default=2.0, help="seconds between sends")
    parser.add_argument(
        "--trace",
        type=float,
        default=0,
        help="run the agent under tracemalloc: a snapshot every N s",
    )
    parser.add_argument("--trace-out", type=Path, help="where the snapshots are copied to")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
