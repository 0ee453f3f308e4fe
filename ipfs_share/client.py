"""The library's front door: connect to storage (a Kubo node, or an embedded store).

Identities, files, shares and mailboxes hang off this facade as later parts land; today it
finds and opens the storage everything else stands on.

>>> import asyncio, tempfile
>>> async def demo() -> str:
...     async with await open_storage(embedded=tempfile.mkdtemp()) as store:
...         return (await store.add(b"hi")).cid
>>> asyncio.run(demo())
'bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom'
"""

from __future__ import annotations

import os

from ipfs_share.node.discovery import resolve_api
from ipfs_share.storage.base import Storage
from ipfs_share.storage.embedded import EmbeddedStorage
from ipfs_share.storage.kubo import KuboStorage

__all__ = ["open_storage"]


async def open_storage(
    api: str | None = None, *, embedded: str | os.PathLike[str] | None = None
) -> Storage:
    """Open the storage to use: an embedded store in ``embedded``, else a Kubo node.

    The Kubo node is found from ``api``, then ``IPFS_SHARE_API``, then the node
    ipfs-share manages, then ``/ip4/127.0.0.1/tcp/5001``; if it does not answer, this
    raises :class:`~ipfs_share.errors.NodeUnreachableError` whose hint says how to start one.
    """
    if embedded is not None:
        return EmbeddedStorage(embedded)
    return await KuboStorage.connect(resolve_api(api))
