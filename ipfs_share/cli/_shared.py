"""Helpers for the share-flow commands (put, files, share, shares, open, revoke, capability).

Not a command module (the leading underscore keeps the dispatcher from loading it as one).

>>> parse_range("0-9"), parse_range("100-")
((0, 10), (100, None))
>>> parse_time("2026-11-01"), parse_time("1700000000")
(1793491200, 1700000000)
>>> split_names(["bob,carol", " dave "])
['bob', 'carol', 'dave']
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from ipfs_share import paths
from ipfs_share.cli._fast import BIG, binary_stdout, parse_range, progress
from ipfs_share.cli.common import Context
from ipfs_share.cli.passphrase import passphrase_source
from ipfs_share.client import Mesh, connect
from ipfs_share.errors import InvalidInputError
from ipfs_share.local.keystore import Keystore
from ipfs_share.local.state import StateDB

__all__ = [
    "BIG",
    "Names",
    "acting",
    "binary_stdout",
    "fmt_time",
    "open_mesh",
    "parse_range",
    "parse_time",
    "progress",
    "split_names",
]


def acting(args: argparse.Namespace) -> str | None:
    """The identity named with the global ``--as``, or None for the default one."""
    value: str | None = getattr(args, "as_", None)
    return value


@asynccontextmanager
async def open_mesh(
    args: argparse.Namespace,
    ctx: Context,
    *,
    max_staleness: float | None = None,
    replication: int | None = None,
) -> AsyncIterator[Mesh]:
    """A :class:`Mesh` over the home and the node (or the cluster), with the CLI's
    passphrase sources."""
    mesh = await connect(
        ctx.api,
        cluster=ctx.cluster,
        replication=replication,
        passphrase=passphrase_source(args),
        max_staleness=max_staleness,
    )
    async with mesh:
        yield mesh


def split_names(values: list[str] | None) -> list[str]:
    """``--to bob,carol --to dave`` as one list, in order, without blanks or repeats."""
    out = [n.strip() for v in values or [] for n in v.split(",")]
    return list(dict.fromkeys(n for n in out if n))


def parse_time(text: str) -> int:
    """Unix seconds from Unix seconds or an ISO 8601 date or time (no offset means UTC)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"expected Unix seconds or an ISO 8601 date such as 2026-12-01 or "
            f"2026-12-01T09:00:00+01:00, found {text!r:.60}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def fmt_time(ts: int | None, *, never: str = "never") -> str:
    if ts is None:
        return never
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Names:
    """How to show a did here: a local identity's name, else a contact's petname."""

    def __init__(self) -> None:
        home = paths.home_dir()
        self._names = {k.did: k.name for k in Keystore(home).list()}
        db = StateDB(home)
        try:
            for c in db.contacts.list():
                self._names.setdefault(c.did, c.petname)
        finally:
            db.close()

    def __call__(self, did: str | None) -> str:
        if did is None:
            return "-"
        name = self._names.get(did)
        return f"{name} ({did})" if name else did

    def short(self, did: str) -> str:
        return self._names.get(did) or did
