"""Helpers for the share-flow commands (put, files, share, shares, open, revoke, capability).

Not a command module (the leading underscore keeps the dispatcher from loading it as one).

>>> parse_range("0-9"), parse_range("100-")
((0, 10), (100, None))
>>> parse_time("2026-11-01"), parse_time("1700000000")
(1793491200, 1700000000)
>>> window_end("2026-11-01", inclusive=True) - parse_time("2026-11-01")   # the whole day
86400
>>> window_end("2026-11-01T09:00:00Z", inclusive=True) - parse_time("2026-11-01T09:00:00Z")
1
>>> split_names(["bob,carol", " dave "])
['bob', 'carol', 'dave']
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime

from ipfs_share import paths
from ipfs_share.cli._fast import BIG, binary_stdout, parse_range, progress
from ipfs_share.cli.common import Context
from ipfs_share.cli.passphrase import passphrase_source
from ipfs_share.cli.text import printable
from ipfs_share.client import Mesh, connect
from ipfs_share.errors import InvalidInputError
from ipfs_share.local.keystore import Keystore
from ipfs_share.local.state import StateDB
from ipfs_share.times import iso

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
    "searching",
    "split_names",
    "window_end",
]

SEARCH_NOTE_AFTER = 2.0  # seconds of silence before a lookup says it is searching


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
        timeout=ctx.timeout,
    )
    async with mesh:
        yield mesh


@contextmanager
def searching(ctx: Context, mesh: Mesh, what: str) -> Iterator[None]:
    """Say on stderr that ``what`` is being searched for if it takes more than a moment
    (a node that does not have a block asks the network, up to the search timeout)."""
    limit = getattr(mesh.storage, "deadlines", None)
    up_to = f"up to {limit.block:g} s, " if limit is not None else ""
    handle = asyncio.get_running_loop().call_later(
        SEARCH_NOTE_AFTER,
        ctx.note,
        f"searching the network for {what} ({up_to}--timeout SECONDS to change)",
    )
    try:
        yield
    finally:
        handle.cancel()


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


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def window_end(text: str, *, inclusive: bool) -> int:
    """The first second a window refuses, from ``--until TIME`` (exclusive: TIME itself
    is refused) or ``--not-after TIME`` (``inclusive``: a date means through the end of
    that day, UTC; a time, through that second)."""
    value = text.strip()
    start = parse_time(value)
    if not inclusive:
        return start
    return start + (86400 if _is_date(value) else 1)


def fmt_time(ts: int | None, *, never: str = "never") -> str:
    """A time as a person reads it (:func:`ipfs_share.times.iso`): ISO 8601, UTC."""
    return iso(ts, never=never)


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
        return f"{printable(name)} ({did})" if name else printable(did)

    def short(self, did: str) -> str:
        return printable(self._names.get(did) or did)
