"""The HTTP API of real ``ipfs-share serve`` processes (started and stopped by their pids):
the Node example run with Node's own fetch (alice puts and shares, bob's agent hears the
capsule as an event and opens it), and a 256 MiB upload and download with the agent's
RSS, read from /proc, staying flat.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from agentkit import AgentProcess, Person, person

from ipfs_share.agent.files import read_token
from ipfs_share.node.daemon import RunningNode

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def homes(kubo: RunningNode, tmp_path: Path) -> AsyncIterator[tuple[Person, Person]]:
    alice = await person(kubo.api_url, tmp_path / "alice", "alice")
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    await alice.mesh.close()
    await bob.mesh.close()
    yield alice, bob


@pytest.fixture
def agents(kubo: RunningNode, homes: tuple[Person, Person]) -> Iterator[list[AgentProcess]]:
    started = [AgentProcess(p.home, kubo.api_url) for p in homes]
    try:
        for a in started:
            a.wait_ready()
        yield started
    finally:
        for a in started:
            a.stop()


def api_of(agent: AgentProcess) -> tuple[str, str]:
    """(base URL, token) of a running agent's HTTP API, from its status."""
    status = agent.wait_ready()
    token = read_token(agent.home)
    assert status["http"] and token
    return status["http"][0], token


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node")
def test_the_node_example_shares_and_opens_over_http(agents: list[AgentProcess]) -> None:
    (alice_api, alice_token), (bob_api, bob_token) = map(api_of, agents)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "ALICE_API": alice_api,
        "ALICE_TOKEN": alice_token,
        "BOB_API": bob_api,
        "BOB_TOKEN": bob_token,
    }
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(ROOT / "examples/node_backend.mjs")],
        env=env,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, (out, err, agents[1].text()[-3000:])
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] is True and result["range_status"] == 206 and result["past_the_end"] == 416
    assert result["opened_bytes"] == len("minutes of the meeting\n") * 2000


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_256_mib_up_and_down_with_the_agents_rss_flat(
    kubo: RunningNode, agents: list[AgentProcess]
) -> None:
    alice = agents[0]
    base, token = api_of(alice)
    headers = {"Authorization": f"Bearer {token}"}
    total, piece = 256 << 20, 1 << 20
    pattern = hashlib.sha256(b"seed").digest() * (piece // 32)
    sent = hashlib.sha256()
    samples: list[int] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            samples.append(rss(alice.pid))
            await asyncio.sleep(0.2)

    async def body() -> AsyncIterator[bytes]:
        for i in range(total // piece):
            chunk = i.to_bytes(4, "big") + pattern[4:]  # every MiB different
            sent.update(chunk)
            yield chunk

    baseline = rss(alice.pid)
    sampler = asyncio.ensure_future(sample())
    timeout = aiohttp.ClientTimeout(total=900)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            t0 = time.monotonic()
            async with http.post(
                f"{base}/v1/files",
                params={"name": "big.bin"},
                data=body(),
                headers={**headers, "Content-Length": str(total)},
            ) as r:
                assert r.status == 201, await r.text()
                cid = (await r.json())["content"]
            up = time.monotonic() - t0
            got = hashlib.sha256()
            n = 0
            t0 = time.monotonic()
            async with http.get(f"{base}/v1/files/{cid}/plaintext", headers=headers) as r:
                assert r.status == 200 and r.headers["Content-Length"] == str(total)
                async for chunk in r.content.iter_chunked(1 << 20):
                    got.update(chunk)
                    n += len(chunk)
            down = time.monotonic() - t0
    finally:
        sampling = False
        await sampler
    assert n == total and got.digest() == sent.digest()
    peak = max(samples)
    print(
        f"256 MiB over HTTP: up {up:.1f} s, down {down:.1f} s; agent RSS {baseline >> 20} MiB "
        f"at rest, peak {peak >> 20} MiB ({len(samples)} samples)"
    )
    assert peak - baseline < 64 << 20, (baseline, peak)  # flat: a quarter of the file at most


async def test_listen_on_a_unix_socket_still_needs_the_token(
    kubo: RunningNode, homes: tuple[Person, Person], tmp_path: Path
) -> None:
    import os
    import stat

    alice, _ = homes
    path = tmp_path / "api.sock"
    agent = AgentProcess(alice.home, kubo.api_url, "--listen", f"unix:{path}")
    try:
        status = agent.wait_ready()
        assert status["http"] == [f"unix:{path}"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        token = read_token(alice.home)
        timeout = aiohttp.ClientTimeout(total=60)
        for headers, want in (({}, 401), ({"Authorization": f"Bearer {token}"}, 200)):
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.UnixConnector(path=str(path)), timeout=timeout
                ) as http,
                http.get("http://agent/v1/identities", headers=headers) as r,
            ):
                assert r.status == want
    finally:
        agent.stop()
