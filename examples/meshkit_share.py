"""The MeshKit share example, on IPFS: put, share for 7 days view-only, open, revoke.

Alice puts a document, shares it with Bob for 7 days without download, and Bob opens and
reads it; saving it is refused (download_not_allowed). Alice revokes the share, and Bob's
next open is refused with share_revoked. MeshKit's calls map one to one:

    MeshKit                         ipfs-share
    files.put(name, data)           await mesh.files.put(name, data)
    share.file(f).with(...)         await mesh.share.file(f).with_(...)
    share.openCapsule(id)           await mesh.share.open_capsule(id)
    share.revoke(id)                await mesh.share.revoke(id)

There is no server in between: Alice and Bob each have their own home (keys and local
records) and talk only to a Kubo node. Here both use the same node; on two connected nodes
nothing changes. Each person lives in a temporary home, so your own identities are never
touched.

Run it against the node ipfs-share manages (`ipfs-share node start`) or any Kubo:

    python examples/meshkit_share.py [--api /ip4/127.0.0.1/tcp/5001]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ipfs_share.client import Mesh, connect
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import DownloadNotAllowedError, IpfsShareError, ShareRevokedError
from ipfs_share.node import resolve_api

# A demo passphrase, so the example runs unattended. A real app asks its user for one (or
# reads IPFS_SHARE_PASSPHRASE, the default when connect() is given no passphrase).
DEMO_PASSPHRASE = b"demo passphrase: never hard-code a real one"

DOCUMENT = "# Q3 plan\n\nShip the share flow. Tell nobody yet.\n"


@dataclass(frozen=True)
class Outcome:
    """What happened, for the tests: the IDs involved and the refusals' error codes."""

    content: str
    capsule: str
    text: str
    save_refused: str
    open_after_revoke: str


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
        async with (
            await person(api, Path(tmp, "alice"), "alice", kdf) as alice,
            await person(api, Path(tmp, "bob"), "bob", kdf) as bob,
        ):
            return await story(alice, bob, Path(tmp))


async def story(alice: Mesh, bob: Mesh, scratch: Path) -> Outcome:
    # Bob tells Alice his did (out of band: a QR code, a chat message); she looks up his
    # published identity document and keeps him as a contact named "bob".
    bob_did = bob.identity.get().did
    await alice.identity.resolve(bob_did, petname="bob")

    # files.put: encrypted on the way in, pinned on the node by its real CID.
    file = await alice.files.put("q3-plan.md", DOCUMENT)
    print(f"alice: put {file.name} ({file.size} bytes) -> {file.cid}")

    # share.file(file).with(...): a signed capsule for Bob, valid 7 days, view-only.
    capsule = await alice.share.file(file).with_("bob", expires_in="7d", allow_download=False)
    print(f"alice: shared it with bob for 7 days, view-only: capsule {capsule.id}")

    # share.openCapsule: Bob needs only the capsule ID (its CID); everything else is
    # fetched from IPFS and checked: signature, expiry, revocation, then his key.
    opened = await bob.share.open_capsule(capsule.id)
    text = await opened.text()
    print(f"bob: opened {opened.name} ({opened.media_type}): {text.splitlines()[0]!r}")

    # View-only means save() refuses. This is advice to honest clients: a modified one
    # that decrypted the bytes can write them anywhere.
    try:
        await opened.save(scratch / "q3-plan.md")
    except DownloadNotAllowedError as exc:
        save_refused = exc.code
        print(f"bob: save refused: {exc.code}: {exc.message}")
    else:
        raise SystemExit("expected save to be refused")

    # share.revoke: the capsule goes on Alice's signed revocation list, published with IPNS.
    revoked = await alice.share.revoke(capsule.id)
    print(f"alice: revoked it (revocation list head {revoked.head})")

    # Every open checks the issuer's freshest list first, so Bob is refused from now on.
    # (Revocation cannot take back the plaintext Bob already read.)
    try:
        await bob.share.open_capsule(capsule.id)
    except ShareRevokedError as exc:
        refused = exc.code
        print(f"bob: open refused: {exc.code}: {exc.message}")
    else:
        raise SystemExit("expected the open to be refused")

    return Outcome(file.cid, capsule.id, text, save_refused, refused)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="the Kubo RPC API (multiaddr or URL)")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.api))
    except IpfsShareError as exc:
        print(f"meshkit_share: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"meshkit_share: hint: {exc.hint}", file=sys.stderr)
        raise SystemExit(1) from None
