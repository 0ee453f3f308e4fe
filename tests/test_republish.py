"""Republishing on real Kubo nodes: after a share and a send the owner's identity document,
revocation list and mailbox head go out again byte for byte; a recipient with no key
unlocked brings them back on a node that never had them; records of one's own near their
end of validity are re-signed only with keys unlocked; the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import start_test_node

from ipfs_share.cli.main import main
from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import NotFoundError
from ipfs_share.formats.ipns import verify_record
from ipfs_share.node.daemon import RunningNode
from ipfs_share.storage.kubo import KuboStorage

FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


def no_passphrase(prompt: str) -> bytes:
    raise AssertionError(f"republish asked for a passphrase ({prompt})")


async def person(api: str, home: Path, name: str, **options: Any) -> Mesh:
    mesh = Mesh(await KuboStorage.connect(api), home, **{**FAST, **options})
    if not mesh.identity.list():
        await mesh.identity.create(name)
        await mesh.identity.publish()
    return mesh


async def shared_and_sent(api: str, tmp_path: Path) -> tuple[Mesh, Mesh, str]:
    alice = await person(api, tmp_path / "alice", "alice")
    bob = await person(api, tmp_path / "bob", "bob")
    for x, y in ((alice, bob), (bob, alice)):
        me = y.identity.get()
        x.identity.add_contact(me.name, me.did)
    f = await alice.files.put("note.txt", b"hello bob")
    cap = await alice.share.file(f).with_("bob")
    await alice.share.send(cap)
    return alice, bob, cap.id


@pytest.fixture
def fresh_node(kubo_binary: Path, tmp_path: Path) -> Iterator[RunningNode]:
    """A node of this test's own that never saw any record of the others."""
    daemon, node = start_test_node(tmp_path / "fresh-node", kubo_binary)
    try:
        yield node
    finally:
        daemon.stop(timeout=10)


async def test_republish_after_share_and_send_puts_the_owners_three_records_byte_for_byte(
    kubo: RunningNode, tmp_path: Path
) -> None:
    alice, bob, _ = await shared_and_sent(kubo.api_url, tmp_path)
    own = {r.name: r for r in alice.db.records.list(own=True)}
    assert sorted(r.kind for r in own.values()) == ["identity", "mailbox", "revocation"]
    before = {n: await alice.storage.ipns_get(n) for n in own}
    report = await alice.republish()
    assert report.ok and report.count("reput", own=True) == 3
    for name, row in own.items():
        assert before[name] == row.record  # what the node had is what was kept ...
        assert await alice.storage.ipns_get(name) == row.record  # ... and is put again
    again = await alice.republish()  # idempotent
    assert again.count("reput", own=True) == 3 and again.ok
    put = {r.name: r.put_at for r in again.records}
    assert all(put[n] is not None for n in own)
    await alice.close()
    await bob.close()


async def test_a_recipient_with_no_key_unlocked_brings_the_records_back_on_another_node(
    kubo: RunningNode, fresh_node: RunningNode, tmp_path: Path
) -> None:
    alice, bob, cap = await shared_and_sent(kubo.api_url, tmp_path)
    assert [i.id for i in await bob.inbox.sync()] == [cap]  # bob accepts alice's records
    alices = {
        r.name: r for r in bob.db.records.list(own=False) if r.whose == alice.identity.get().did
    }
    assert sorted(r.kind for r in alices.values()) == ["identity", "mailbox", "revocation"]
    await bob.close()
    async with await KuboStorage.connect(fresh_node.api_url) as there:
        for name in alices:  # the new node has never seen them
            with pytest.raises(NotFoundError):
                await there.ipns_get(name)
    # bob's home, a new process, no key unlocked, against the node that lost them
    bob = Mesh(
        await KuboStorage.connect(fresh_node.api_url),
        tmp_path / "bob",
        passphrase=no_passphrase,
        kdf=KdfParams.fastest(),
    )
    report = await bob.republish()
    done = {r.name: r for r in report.records}
    for name, row in alices.items():
        assert done[name].action == "reput" and not done[name].own
        assert await bob.storage.ipns_get(name) == row.record  # back, byte for byte
        assert await alice.storage.ipns_get(name) == row.record  # what alice's node holds
    await bob.close()
    await alice.close()


async def test_own_records_near_their_end_are_resigned_only_with_keys_unlocked(
    kubo: RunningNode, tmp_path: Path
) -> None:
    alice, bob, _ = await shared_and_sent(kubo.api_url, tmp_path)
    await alice.close()
    await bob.close()
    later = time.time() + 70 * 86400  # 20 days of validity left: renewal is due
    locked = Mesh(
        await KuboStorage.connect(kubo.api_url),
        tmp_path / "alice",
        passphrase=no_passphrase,
        kdf=KdfParams.fastest(),
        now=lambda: later,
    )
    report = await locked.republish()
    mine = [r for r in report.records if r.own]
    assert len(mine) == 3 and {r.action for r in mine} == {"reput"}
    assert all("renewal needs" in (r.reason or "") for r in mine)
    await locked.close()
    alice = await person(kubo.api_url, tmp_path / "alice", "alice", now=lambda: later)
    old = {r.name: r for r in alice.db.records.list(own=True)}
    report = await alice.republish(unlock=True)
    resigned = {r.name: r for r in report.records if r.action == "resigned"}
    assert set(resigned) == set(old)
    for name, row in resigned.items():
        assert row.seq == old[name].seq and row.eol > old[name].eol  # same head, longer
        held = verify_record(name, await alice.storage.ipns_get(name), now=_dt(later))
        assert held.sequence == row.seq and int(held.validity.timestamp()) == row.eol
    await alice.close()


async def test_a_recipient_renews_its_own_records_and_never_signs_those_it_reads(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """bob's keys are unlocked, every record is near its end, and bob even holds the key of
    alice's mailbox to him (both ends derive it): he re-signs his own records, and puts each
    of alice's again byte for byte, signing none of them."""
    alice, bob, cap = await shared_and_sent(kubo.api_url, tmp_path)
    assert [i.id for i in await bob.inbox.sync()] == [cap]  # bob acknowledges: a feed of his
    alices = {r.name: r for r in bob.db.records.list(own=False)}
    assert sorted(r.kind for r in alices.values()) == ["identity", "mailbox", "revocation"]
    own_before = {r.name: r for r in bob.db.records.list(own=True)}
    assert sorted(r.kind for r in own_before.values()) == ["identity", "mailbox"]
    await alice.close()
    await bob.close()
    later = time.time() + 70 * 86400  # 20 days of validity left on every record
    bob = await person(kubo.api_url, tmp_path / "bob", "bob", now=lambda: later)
    report = await bob.republish(unlock=True)
    done = {r.name: r for r in report.records}
    for name, row in alices.items():
        assert done[name].action == "reput" and not done[name].own, done[name]
        assert await bob.storage.ipns_get(name) == row.record  # alice's bytes, unsigned by bob
        kept = bob.db.records.get(name)
        assert kept is not None and kept.record == row.record and not kept.own
    assert {n for n, r in done.items() if r.action == "resigned"} == set(own_before)
    await bob.close()


def _dt(t: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC)


async def test_cli_republish_reports_each_record_and_counts(
    kubo: RunningNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alice, bob, _ = await shared_and_sent(kubo.api_url, tmp_path)
    await alice.close()
    await bob.close()
    monkeypatch.setenv("IPFS_SHARE_HOME", str(tmp_path / "alice"))
    monkeypatch.setenv("IPFS_SHARE_API", kubo.api_url)
    monkeypatch.delenv("IPFS_SHARE_PASSPHRASE", raising=False)  # none is needed
    code = await asyncio.to_thread(main, ["republish", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["counts"]["failed"] == 0 and out["counts"]["reput"] >= 3
    kinds = sorted(r["kind"] for r in out["records"] if r["own"] and r["action"] == "reput")
    assert kinds == ["identity", "mailbox", "revocation"]
    assert all(r["put_at"] for r in out["records"] if r["action"] == "reput")
    code = await asyncio.to_thread(main, ["republish"])
    text = capsys.readouterr().out
    assert code == 0 and "records put again" in text and "identity" in text


async def test_a_home_that_kept_no_records_takes_them_from_the_node_and_puts_them_again(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """A home from before the record store (schema 4) knows its heads but kept no signed
    record: a republish takes the node's record of exactly each head, verified, no key."""
    alice, bob, cap = await shared_and_sent(kubo.api_url, tmp_path)
    assert [i.id for i in await bob.inbox.sync()] == [cap]
    alice_did = alice.identity.get().did
    for mesh in (alice, bob):
        mesh.db.database.execute("DELETE FROM ipns_records")
        await mesh.close()
    alice = Mesh(
        await KuboStorage.connect(kubo.api_url),
        tmp_path / "alice",
        passphrase=no_passphrase,
        kdf=KdfParams.fastest(),
    )
    report = await alice.republish()
    assert report.count("reput", own=True) == 3 and report.ok
    await alice.close()
    bob = Mesh(
        await KuboStorage.connect(kubo.api_url),
        tmp_path / "bob",
        passphrase=no_passphrase,
        kdf=KdfParams.fastest(),
    )
    report = await bob.republish()
    alices = [r for r in report.records if r.whose == alice_did]
    assert sorted(r.kind for r in alices) == ["identity", "mailbox", "revocation"]
    assert {r.action for r in alices} == {"reput"}
    await bob.close()
