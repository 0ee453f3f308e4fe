"""A team keychain: shared keys, a re-share, a ban with rotation, a file for a late joiner.

Alice creates a keychain and shares its key with Bob, allowing him to share onward; Bob
shares it with Carol. Each share is an offer that holds no key: the key is released only
after the recipient accepts (on its next sync), so the sharer could still cancel it.
Carol encrypts a note for the team; Alice reads it. Then Alice bans Carol:

    await alice.keychains.ban(carol_did, fp)          # rotates by default

and the new key goes to everyone left. What Alice encrypts now, Bob reads and Carol
cannot; what was encrypted before the ban stays readable to Carol (a ban cannot take
back keys already held). Finally Alice puts a file for the keychain, and Dave, who joins
after the put, opens it by being shared the key.

The offers and acceptances travel as CIDs handed to ``receive`` here, as a mailbox would
carry them. Each person has a temporary home of their own. Run it against the node
ipfs-share manages (`ipfs-share node start`) or any Kubo:

    python examples/team_keychain.py [--api /ip4/127.0.0.1/tcp/5001]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ipfs_share.client import Mesh, connect
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import IpfsShareError

# A demo passphrase, so the example runs unattended. A real app asks its user for one (or
# reads IPFS_SHARE_PASSPHRASE, the default when connect() is given no passphrase).
DEMO_PASSPHRASE = b"demo passphrase: never hard-code a real one"


@dataclass(frozen=True)
class Outcome:
    """What happened, for the tests."""

    keychain: str
    members_before_ban: int
    read_by_alice: bytes
    read_by_bob_after_ban: bytes
    carol_after_ban: str  # the error code Carol gets on the new message
    carol_before_ban: bytes  # what she still reads from before the ban
    dave_opened: bytes


async def person(api: str | None, home: Path, name: str, kdf: KdfParams | None) -> Mesh:
    mesh = await connect(api, home=home, passphrase=lambda prompt: DEMO_PASSPHRASE, kdf=kdf)
    await mesh.identity.create(name)
    await mesh.identity.publish()
    return mesh


async def share(sharer: Mesh, to: Mesh, fp: str, **grants: bool) -> None:
    """Offer the most recent key; the recipient accepts; the sharer releases it."""
    offer = await sharer.keychains.share_most_recent_key(fp, to.identity.get().did, **grants)
    accepted = await to.keychains.receive(offer.offer)  # fetch, replay, accept
    await sharer.keychains.receive(accepted.wrote[0])  # read the accept, release
    deadline = time.monotonic() + 30
    while not (await to.keychains.sync()).received:  # the release arrives
        if time.monotonic() > deadline:
            raise TimeoutError("the release did not arrive")
        await asyncio.sleep(0.3)


async def main(api: str | None = None, *, kdf: KdfParams | None = None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="ipfs-share-example-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            people: dict[str, Mesh] = {}
            for name in ("alice", "bob", "carol", "dave"):
                people[name] = await person(api, Path(tmp, name), name, kdf)
                stack.push_async_callback(people[name].close)
            return await story(people)


async def story(people: dict[str, Mesh]) -> Outcome:
    alice, bob, carol, dave = (people[n] for n in ("alice", "bob", "carol", "dave"))
    fp = (await alice.keychains.create("team secrets")).fingerprint
    print(f"alice created keychain {fp}")
    await share(alice, bob, fp, allow_sharing=True)
    await share(bob, carol, fp)  # bob may share onward; carol may not
    print("bob and carol hold the key")

    note = await carol.keychains.encrypt(fp, b"carol's note", ad=b"notes")
    read_by_alice = await alice.keychains.decrypt(fp, note, ad=b"notes")
    print(f"alice reads carol's note: {read_by_alice!r}")

    await alice.keychains.sync()  # alice learns that carol joined (through bob)
    members = (await alice.keychains.show(fp)).members
    result = await alice.keychains.ban(carol.identity.get().did, fp)
    print(f"alice banned carol; new key {result.rotated_to} for {result.delivered_to} members")

    after = await alice.keychains.encrypt(fp, b"after the ban", ad=b"notes")
    deadline = time.monotonic() + 30
    while not any(
        r.fingerprint == result.rotated_to for r in (await bob.keychains.sync()).received
    ):
        if time.monotonic() > deadline:
            raise TimeoutError("the new key did not reach bob")
        await asyncio.sleep(0.3)
    read_by_bob = await bob.keychains.decrypt(fp, after, ad=b"notes")
    await carol.keychains.sync()
    try:
        await carol.keychains.decrypt(fp, after, ad=b"notes")
        carol_after = "read it"
    except IpfsShareError as exc:
        carol_after = exc.code
    carol_before = await carol.keychains.decrypt(fp, note, ad=b"notes")
    print(f"bob reads {read_by_bob!r}; carol gets {carol_after}, still reads {carol_before!r}")

    stored = await alice.files.put("plan.txt", b"the plan", keychain=fp)
    assert stored.keychain_file is not None
    await share(alice, dave, fp)  # dave joins after the put
    data = await dave.storage.block_get(stored.keychain_file)
    file, file_key = await dave.keychains.open_file(data)
    opened = await dave.files.open(file.content.cid, file_key)
    dave_opened = b"".join([piece async for piece in opened])
    print(f"dave, who joined after the put, opens it: {dave_opened!r}")
    return Outcome(fp, members, read_by_alice, read_by_bob, carol_after, carol_before,
                   dave_opened)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get("IPFS_SHARE_API"))
    try:
        asyncio.run(main(parser.parse_args().api))
    except IpfsShareError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        sys.exit(1)
