"""The main job, end to end on a real node: put bytes, get them back, check them.

Run it with `make demo` (which installs Kubo and starts the managed node first), or on its
own against any node: `python examples/quickstart.py [--api /ip4/127.0.0.1/tcp/5001]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys

from ipfs_share.client import open_storage
from ipfs_share.errors import IpfsShareError


async def main(api: str | None) -> None:
    async with await open_storage(api) as store:
        info = await store.node_info()
        print(f"node: {info.backend} {info.version}, peer {info.peer_id}")

        data = b"hello from ipfs-share\n" + os.urandom(3 * 1024 * 1024)
        added = await store.add(data)
        print(f"put: {added.size} bytes -> {added.cid} (pinned)")

        back = b"".join([piece async for piece in store.cat(added.cid)])
        if back != data:
            raise SystemExit("get: the bytes read back differ from the bytes put")
        print(f"get: {len(back)} bytes, sha256 {hashlib.sha256(back).hexdigest()[:16]}..., match")

        middle = b"".join([p async for p in store.cat(added.cid, offset=1_000_000, length=16)])
        assert middle == data[1_000_000:1_000_016]
        print("get: a 16-byte range from the middle matches too")

        await store.pin_rm(added.cid)
        print("cleanup: unpinned (a later garbage collection on the node removes the blocks)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="the Kubo RPC API (multiaddr or URL)")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.api))
    except IpfsShareError as exc:
        print(f"quickstart: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"quickstart: hint: {exc.hint}", file=sys.stderr)
        raise SystemExit(1) from None
