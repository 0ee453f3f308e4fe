"""One ciphertext, one capsule, three recipients; then drop one of them with a re-key.

Alice puts a file once and shares it with Bob, Carol and Dave in a single capsule: the
content is encrypted once, and the capsule wraps its key once per recipient. Each of them
opens it. Then Alice drops Carol:

    await alice.share.revoke(capsule.id, rotate=True, drop=["carol"])

revokes the capsule, re-encrypts the content under a new key (a new content CID), issues
a new capsule to Bob and Dave only, and unpins the old ciphertext. Carol is refused on the
new capsule (she is not a recipient) and on the old one (it is revoked); Bob and Dave open
the new one. Rotating is what makes dropping someone cryptographic: without it Carol, who
kept the old key, could still decrypt the old ciphertext from anyone who kept a copy.

Each person has a temporary home of their own, so your identities are never touched.
Run it against the node ipfs-share manages (`ipfs-share node start`) or any Kubo:

    python examples/multi_recipient.py [--api /ip4/127.0.0.1/tcp/5001]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ipfs_share.client import Mesh, connect
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import IpfsShareError, RecipientNotAuthorizedError, ShareRevokedError
from ipfs_share.node import resolve_api

# A demo passphrase, so the example runs unattended. A real app asks its user for one (or
# reads IPFS_SHARE_PASSPHRASE, the default when connect() is given no passphrase).
DEMO_PASSPHRASE = b"demo passphrase: never hard-code a real one"

RECIPIENTS = ("bob", "carol", "dave")


@dataclass(frozen=True)
class Outcome:
    """What happened, for the tests."""

    old_content: str
    new_content: str
    old_capsule: str
    new_capsule: str
    new_recipients: tuple[str, ...]  # the names on the new capsule
    opened_before: tuple[str, ...]  # who opened the first capsule
    opened_after: tuple[str, ...]  # who opened the new one
    refused: dict[str, str]  # error code of each of Carol's refused opens
    old_unpinned: bool


async def person(api: str | None, home: Path, name: str, kdf: KdfParams | None) -> Mesh:
    """Connect a fresh home to the node, with one identity, published so others find it."""
    mesh = await connect(
        api or resolve_api(), home=home, passphrase=lambda prompt: DEMO_PASSPHRASE, kdf=kdf
    )
    await mesh.identity.create(name)
    await mesh.identity.publish()
    return mesh


async def main(api: str | None = None, *, kdf: KdfParams | None = None) -> Outcome:
    """Run the story; ``kdf`` is the passphrase KDF's cost (tests pass the cheapest)."""
    with tempfile.TemporaryDirectory(prefix="ipfs-share-example-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            people: dict[str, Mesh] = {}
            for name in ("alice", *RECIPIENTS):
                people[name] = await person(api, Path(tmp, name), name, kdf)
                stack.push_async_callback(people[name].close)
            return await story(people)


async def story(people: dict[str, Mesh]) -> Outcome:
    alice = people["alice"]
    # Each recipient gives Alice their did; she resolves their published documents and
    # keeps them as contacts under the same names.
    for name in RECIPIENTS:
        await alice.identity.resolve(people[name].identity.get().did, petname=name)

    data = os.urandom(200_000)  # a few 64 KiB chunks, so the re-key streams several
    file = await alice.files.put("dataset.bin", data)
    print(f"alice: put {file.name} ({file.size} bytes) once -> {file.cid}")

    capsule = await alice.share.file(file).with_(list(RECIPIENTS), expires_in="30d")
    print(f"alice: one capsule for {', '.join(RECIPIENTS)}: {capsule.id}")

    opened_before = []
    for name in RECIPIENTS:
        opened = await people[name].share.open_capsule(capsule.id)
        assert await opened.read() == data
        opened_before.append(name)
        print(f"{name}: opened it, {opened.size} bytes, same as put")

    # Drop Carol: revoke, re-encrypt under a new key, re-issue to the others, unpin the old.
    result = await alice.share.revoke(capsule.id, rotate=True, drop=["carol"])
    assert result.rotated_to is not None
    new = result.reissued[0]
    print(f"alice: revoked {capsule.id}")
    print(f"alice: re-encrypted the content under a new key -> {result.rotated_to}")
    print(f"alice: new capsule for {', '.join(n for _, n in new.recipients)}: {new.id}")
    old_unpinned = file.cid not in await alice.storage.pin_ls()
    print(f"alice: old ciphertext {file.cid} unpinned: {old_unpinned}")

    refused = {}
    carol = people["carol"]
    for label, capsule_id in (("new", new.id), ("old", capsule.id)):
        try:
            await carol.share.open_capsule(capsule_id)
        except (RecipientNotAuthorizedError, ShareRevokedError) as exc:
            refused[label] = exc.code
            print(f"carol: open of the {label} capsule refused: {exc.code}")
        else:
            raise SystemExit(f"expected carol to be refused on the {label} capsule")

    opened_after = []
    for name in ("bob", "dave"):
        opened = await people[name].share.open_capsule(new.id)
        assert opened.cid == result.rotated_to and await opened.read() == data
        opened_after.append(name)
        print(f"{name}: opened the new capsule, same bytes under the new key")

    return Outcome(
        old_content=file.cid,
        new_content=result.rotated_to,
        old_capsule=capsule.id,
        new_capsule=new.id,
        new_recipients=tuple(n for _, n in new.recipients),
        opened_before=tuple(opened_before),
        opened_after=tuple(opened_after),
        refused=refused,
        old_unpinned=old_unpinned,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="the Kubo RPC API (multiaddr or URL)")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.api))
    except IpfsShareError as exc:
        print(f"multi_recipient: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"multi_recipient: hint: {exc.hint}", file=sys.stderr)
        raise SystemExit(1) from None
