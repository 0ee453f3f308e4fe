"""revoke --rotate on a real Kubo node of the test's own: it says when the new key still
reaches a recipient of the revoked share through another share (and how to drop them),
and an interruption anywhere (an exception at each step, and a real kill -9 of the CLI)
leaves, after the retry, exactly what a clean run leaves pinned: no orphaned copy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import start_test_node

from ipfs_share.cli.main import main
from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import InvalidInputError
from ipfs_share.node.daemon import RunningNode
from ipfs_share.storage.kubo import KuboStorage

FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


class Crash(BaseException):
    """The process dying here: nothing after it runs (not an error anyone handles)."""


@pytest.fixture
def node(kubo_binary: Path, tmp_path: Path) -> Iterator[RunningNode]:
    """A node of this test's own: its pins are this test's alone."""
    daemon, running = start_test_node(tmp_path / "node", kubo_binary)
    try:
        yield running
    finally:
        daemon.stop(timeout=10)


async def people(api: str, root: Path, *names: str) -> list[Mesh]:
    out = []
    for name in names:
        mesh = Mesh(await KuboStorage.connect(api), root / name, **FAST)
        await mesh.identity.create(name)
        await mesh.identity.publish()
        out.append(mesh)
    for a in out:
        for b in out:
            if a is not b:
                a.identity.add_contact(b.identity.get().name, b.identity.get().did)
    return out


async def books(mesh: Mesh) -> set[str]:
    """What this home should have pinned: stored files, live capsules, its feeds' heads."""
    me = mesh.identity.get().did
    pinned = {f.cid for f in mesh.files.list(owner=me)}
    pinned |= {s.id for s in mesh.share.list() if s.state == "active"}
    pinned |= {f.pinned for f in mesh.db.feeds.own_feeds() if f.pinned}
    return pinned


async def test_rotate_says_who_still_gets_the_new_key_and_drop_stops_it(
    node: RunningNode, tmp_path: Path
) -> None:
    alice, bob, carol = await people(node.api_url, tmp_path, "alice", "bob", "carol")
    f = await alice.files.put("plan.txt", b"v1")
    only_bob = await alice.share.file(f).with_("bob")
    both = await alice.share.file(f).with_(["bob", "carol"])
    done = await alice.share.revoke(only_bob.id, rotate=True)
    (again,) = done.reissued
    assert set(again.recipients) == {
        (bob.identity.get().did, "bob"),
        (carol.identity.get().did, "carol"),
    }
    assert done.still_reaches == ((bob.identity.get().did, again.id),)
    assert done.to_json()["still_reaches"] == [{"did": bob.identity.get().did, "through": again.id}]
    # Dropping bob from the re-issued one re-keys again and leaves bob out.
    dropped = await alice.share.revoke(again.id, rotate=True, drop=["bob"])
    assert dropped.still_reaches == ()
    assert [d for c in dropped.reissued for d, _ in c.recipients] == [carol.identity.get().did]
    assert both.id in done.revoked
    for mesh in (alice, bob, carol):
        await mesh.close()


def test_cli_revoke_names_who_still_gets_the_new_key(
    node: RunningNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def setup() -> tuple[str, str]:
        alice, bob, carol = await people(node.api_url, tmp_path, "alice", "bob", "carol")
        f = await alice.files.put("plan.txt", b"v1")
        one = await alice.share.file(f).with_("bob")
        await alice.share.file(f).with_(["bob", "carol"])
        for mesh in (alice, bob, carol):
            await mesh.close()
        return one.id, f.cid

    capsule, _ = asyncio.run(setup())
    monkeypatch.setenv("IPFS_SHARE_HOME", str(tmp_path / "alice"))
    monkeypatch.setenv("IPFS_SHARE_API", node.api_url)
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", "pw")
    assert main(["revoke", capsule, "--rotate"]) == 0
    err = capsys.readouterr().err
    assert "bob, a recipient of the revoked share, gets the new key" in err
    assert "--rotate --drop bob" in err


STEPS = ["put", "reissue", "publish", "mark"]


@pytest.mark.parametrize("step", STEPS)
async def test_an_interrupted_rotation_retried_leaves_no_orphaned_pin(
    node: RunningNode, tmp_path: Path, step: str
) -> None:
    async with await KuboStorage.connect(node.api_url) as store:
        baseline = await store.pin_ls()  # what a new node pins by itself
    alice, bob, carol = await people(node.api_url, tmp_path, "alice", "bob", "carol")
    others = await books(bob) | await books(carol)
    f = await alice.files.put("plan.txt", os.urandom(300_000))
    one = await alice.share.file(f).with_("bob")
    two = await alice.share.file(f).with_("carol")
    home = alice.home

    def crash_after(obj: Any, name: str) -> None:
        real = getattr(obj, name)

        async def wrapped(*a: Any, **k: Any) -> Any:
            await real(*a, **k)
            raise Crash(name)

        def wrapped_sync(*a: Any, **k: Any) -> Any:
            real(*a, **k)
            raise Crash(name)

        setattr(obj, name, wrapped if asyncio.iscoroutinefunction(real) else wrapped_sync)

    target = {
        "put": (alice.files, "put_as"),
        "reissue": (alice.share, "_reissue"),
        "publish": (alice.revocations, "revoke"),
        "mark": (alice.db.shares, "mark_revoked"),
    }[step]
    crash_after(*target)
    with pytest.raises(Crash):
        await alice.share.revoke(one.id, rotate=True)
    await alice.close()

    alice = Mesh(await KuboStorage.connect(node.api_url), home, **FAST)  # the retry
    if step == "mark":  # the list already holds it: the retry finishes the clean-up
        with pytest.raises(InvalidInputError, match="already"):
            await alice.share.revoke(one.id, rotate=True)
    else:
        done = await alice.share.revoke(one.id, rotate=True)
        assert set(done.revoked) == {one.id, two.id}
    stored = alice.files.list()
    assert len(stored) == 1 and stored[0].cid != f.cid  # one new copy, the old one gone
    live = [s for s in alice.share.list() if s.state == "active"]
    assert [s.content for s in live] == [stored[0].cid]  # two's re-issue, made once
    pins, expected = await alice.storage.pin_ls(), await books(alice) | others | baseline
    assert pins == expected, (
        sorted(pins - expected),
        sorted(expected - pins),
        [(x.id, x.content, x.state) for x in alice.share.list()],
        [(x.cid, x.state) for x in alice.db.files.list(include_removed=True)],
        [(x.kind, x.head, x.pinned) for x in alice.db.feeds.own_feeds()],
    )
    assert await (await carol.share.open_capsule(live[0].id)).read() == (
        await (
            await alice.files.open(
                stored[0].cid,
                alice.files.file_key(stored[0].cid, (await alice.identity.unlock()).encryption),
            )
        ).read()
    )
    for mesh in (alice, bob, carol):
        await mesh.close()


def test_kill_9_during_rotate_then_the_retry_leaves_no_orphaned_pin(
    node: RunningNode, tmp_path: Path
) -> None:
    async def setup() -> tuple[str, set[str]]:
        async with await KuboStorage.connect(node.api_url) as store:
            baseline = set(await store.pin_ls())
        alice, bob = await people(node.api_url, tmp_path, "alice", "bob")
        f = await alice.files.put("big.bin", os.urandom(24 << 20))
        one = await alice.share.file(f).with_("bob")
        others = baseline | await books(bob)
        for mesh in (alice, bob):
            await mesh.close()
        return one.id, others

    capsule, others = asyncio.run(setup())
    env = {
        **os.environ,
        "IPFS_SHARE_HOME": str(tmp_path / "alice"),
        "IPFS_SHARE_API": node.api_url,
        "IPFS_SHARE_PASSPHRASE": "pw",
    }
    cmd = [sys.executable, "-m", "ipfs_share.cli.main", "revoke", capsule, "--rotate", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)  # somewhere in the re-encryption or after it
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)  # our own child, by its pid
    proc.wait(timeout=30)
    retry = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert retry.returncode in (0, 3), retry.stderr  # done now, or done by the first run

    async def check() -> None:
        alice = Mesh(await KuboStorage.connect(node.api_url), tmp_path / "alice", **FAST)
        assert len(alice.files.list()) == 1
        assert await alice.storage.pin_ls() == await books(alice) | others
        assert alice.share.get(capsule).state == "revoked"
        await alice.close()

    asyncio.run(check())
    if retry.returncode == 0:
        assert json.loads(retry.stdout)["revoked"] == [capsule]
