"""The main job, end to end on a real Kubo node: share a file, open it, revoke it.

Alice and Bob each get their own ipfs-share home (a temp folder per person, as if they
were on two machines) and talk through one Kubo node, the one ``make demo`` starts:

1. both create an identity; Bob publishes his identity document to IPNS;
2. Alice adds Bob's did (which he would send her) as the contact "bob";
3. Alice puts a file (encrypted, pinned) and shares it with bob: a signed capsule;
4. Bob opens the capsule ID and reads the text, checked against what Alice put;
5. Alice revokes the share, and Bob's next open is refused with ``share_revoked``.

Run it with ``make demo``, or on its own against any node:
``python examples/quickstart.py [--api /ip4/127.0.0.1/tcp/5001]``. It exits non-zero if
any step does not behave as expected.

The passphrase that seals both identities' keys is a fixed demo value (or
``IPFS_SHARE_DEMO_PASSPHRASE``): this is a demo, never do that with keys you keep. The key
derivation is the real one (argon2id, moderate), so creating and unlocking take a moment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from ipfs_share.client import Mesh, connect
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.errors import IpfsShareError, ShareRevokedError
from ipfs_share.node import resolve_api

# A demo passphrase, in the open on purpose: the homes are thrown away at the end.
PASSPHRASE = os.environ.get("IPFS_SHARE_DEMO_PASSPHRASE", "demo passphrase, not a secret")
NOTE = "Meet at the north gate at 10:00. Bring the blue folder.\n"


class DemoFailed(Exception):
    """A step did not do what it should."""


def step(text: str) -> None:
    print(f"- {text}")


async def person(api: str | None, home: Path, kdf: KdfParams | None) -> Mesh:
    """One person's ipfs-share: their own home, the shared node."""
    return await connect(
        api or resolve_api(), home=home, passphrase=lambda prompt: PASSPHRASE.encode(), kdf=kdf
    )


async def main(api: str | None, base: Path, *, kdf: KdfParams | None = None) -> None:
    """The whole flow; ``kdf`` is for tests only (the demo keeps the real default)."""
    async with (
        await person(api, base / "alice", kdf) as alice_side,
        await person(api, base / "bob", kdf) as bob_side,
    ):
        info = await alice_side.storage.node_info()
        print(f"node: {info.backend} {info.version}, peer {info.peer_id}")

        alice = await alice_side.identity.create("alice")
        bob = await bob_side.identity.create("bob")
        step(f"created alice {alice.did}")
        step(f"created bob   {bob.did}")

        published = await bob_side.identity.publish()
        step(f"bob published his identity document at /ipns/{published.ipns_name}")

        alice_side.identity.add_contact("bob", bob.did)
        step("alice added bob's did as the contact 'bob'")

        note = base / "meeting.txt"
        note.write_text(NOTE)
        put = await alice_side.files.put("meeting.txt", note)
        step(f"alice put meeting.txt ({put.size} bytes, encrypted, pinned) -> {put.cid}")

        capsule = await alice_side.share.file(put).with_("bob", expires_in="7d")
        step(f"alice shared it with bob -> capsule {capsule.id}")

        opened = await bob_side.share.open_capsule(capsule.id)
        text = await opened.text()
        if text != NOTE:
            raise DemoFailed(f"expected bob to read {NOTE!r}, found {text!r}")
        step(f"bob opened it and read: {text.strip()!r} (matches what alice put)")

        revoked = await alice_side.share.revoke(capsule.id)
        step(f"alice revoked it (revocation list head {revoked.head})")

        try:
            await bob_side.share.open_capsule(capsule.id)
        except ShareRevokedError as exc:
            step(f"bob's next open is refused: {exc.code} ({exc.message})")
        else:
            raise DemoFailed("expected bob's open after the revocation to be refused")

        print(
            "done. Revocation stops future opens; it cannot take back the text bob already "
            "read (revoke --rotate re-keys the content for what is stored from now on)."
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--api", help="the Kubo RPC API (multiaddr or URL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ipfs-share-demo-") as tmp:
        try:
            asyncio.run(main(args.api, Path(tmp)))
        except IpfsShareError as exc:
            print(f"quickstart: error: {exc.code}: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"quickstart: hint: {exc.hint}", file=sys.stderr)
            sys.exit(1)
        except DemoFailed as exc:
            print(f"quickstart: FAILED: {exc}", file=sys.stderr)
            sys.exit(1)
