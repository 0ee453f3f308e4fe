"""A hostile contact cannot stall an inbox (on real Kubo): entries naming capsules nobody
has cost one bounded wait, then back off; another contact's capsule arrives meanwhile; a
capsule past its retry budget is filed missing; the notice queue keeps one per sender."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ipfs_share.client import Mesh
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.formats.ipns import make_record
from ipfs_share.formats.mailbox import MailboxEntry, mailbox_key, make_entry
from ipfs_share.formats.signed import block_of
from ipfs_share.node.daemon import RunningNode
from ipfs_share.services.mailbox.reader import CAPSULE_PATIENCE, RETRY_BUDGET, retry_delay
from ipfs_share.services.mailbox.watching import Notices
from ipfs_share.storage.kubo import KuboStorage

FAST: dict[str, Any] = {"passphrase": lambda _: b"pw", "kdf": KdfParams.fastest()}


async def person(api: str, home: Path, name: str) -> Mesh:
    mesh = Mesh(await KuboStorage.connect(api), home, **FAST)
    await mesh.identity.create(name)
    await mesh.identity.publish()
    return mesh


async def flood(mallory: Mesh, bob: Mesh, n: int) -> None:
    """``n`` entries in mallory's mailbox to bob, each naming a capsule that exists nowhere."""
    keys = await mallory.identity.unlock()
    target = await mallory.identity.recipient(bob.identity.get().did)
    box = mailbox_key(keys.encryption, target.enc, sender=keys.did, recipient=target.did)
    head: MailboxEntry | None = None
    for i in range(n):
        ghost = block_of({"never stored": i, "at": time.time()}).cid
        head = make_entry(keys.signing, head, capsule=ghost, sent=int(time.time()))
        await mallory.storage.block_put(head.data, codec="dag-cbor")
    assert head is not None
    record = make_record(
        box, f"/ipfs/{head.cid}", sequence=head.seq, validity=timedelta(days=1), ttl_seconds=1
    )
    from ipfs_share.formats.ipns import ipns_name

    await mallory.storage.ipns_put(ipns_name(box.public_key), record)


async def test_48_missing_capsules_add_one_bounded_wait_and_never_hold_back_another_sender(
    kubo: RunningNode, tmp_path: Path
) -> None:
    bob = await person(kubo.api_url, tmp_path / "bob", "bob")
    mallory = await person(kubo.api_url, tmp_path / "mallory", "mallory")
    carol = await person(kubo.api_url, tmp_path / "carol", "carol")
    for other in (mallory, carol):
        me = other.identity.get()
        bob.identity.add_contact(me.name, me.did)
        other.identity.add_contact("bob", bob.identity.get().did)
    await flood(mallory, bob, 48)
    cap = await carol.share.file(await carol.files.put("n", b"from carol")).with_("bob")
    await carol.share.send(cap)

    start = time.monotonic()
    report = await bob.inbox.sync_report()
    took = time.monotonic() - start
    mallory_did = mallory.identity.get().did
    assert [i.id for i in report.new] == [cap.id]  # carol's, while mallory's hang
    assert report.deferred == ((mallory_did, 48),) and report.failed == ()
    # One wait for all 48 (fetched at once), bounded by the patience of one fetch.
    assert took < CAPSULE_PATIENCE + 6, took
    pending = bob.inbox.list()
    assert sum(1 for i in pending if i.state == "pending") == 48
    rows = bob.db.mailboxes.inbox(bob.identity.get().did, states=("pending",))
    assert {(r.attempts, (r.retry_at or 0) - int(time.time()) <= retry_delay(1)) for r in rows} == {
        (1, True)
    }

    start = time.monotonic()
    again = await bob.inbox.sync_report()  # the 48 are backed off: nothing waits now
    assert time.monotonic() - start < 3 and again.deferred == () and again.new == ()

    # Their retry time come (no fetch ahead this time: the chain has nothing new), the
    # retries cost one wait again, and count.
    bob.db.database.execute("UPDATE inbox SET retry_at = 0 WHERE state = 'pending'")
    start = time.monotonic()
    retried = await bob.inbox.sync_report()
    assert time.monotonic() - start < CAPSULE_PATIENCE + 6
    assert retried.deferred == ((mallory_did, 48),)
    rows = bob.db.mailboxes.inbox(bob.identity.get().did, states=("pending",))
    assert {r.attempts for r in rows} == {2}

    # One of them, past its budget, is given up on and said so.
    row = rows[0]
    bob.db.database.execute(
        "UPDATE inbox SET attempts = ?, retry_at = 0 WHERE capsule = ?",
        (RETRY_BUDGET - 1, row.capsule),
    )
    last = await bob.inbox.sync_report()
    assert last.missing == ((mallory_did, 1),)
    assert bob.db.mailboxes.item(row.reader, row.capsule).state == "missing"  # type: ignore[union-attr]
    assert row.capsule in {i.id for i in bob.inbox.list(include_withdrawn=True)}
    for mesh in (bob, mallory, carol):
        await mesh.close()


def test_the_notice_queue_keeps_one_record_per_sender() -> None:
    notices = Notices()
    for i in range(10_000):
        notices.put("did:key:mallory", i.to_bytes(4, "big"))
    notices.put("did:key:carol", b"c")
    assert len(notices) == 2
