"""``ipfs-share get``: the owner reads a file she put, with no capsule.

::

    $ ipfs-share get bafybei... > report.pdf      (the plaintext on stdout, binary-safe)
    $ ipfs-share get bafybei... -o report.pdf     (saved atomically)
    $ ipfs-share get bafybei... --range 0-1023    (bytes 0..1023, fetching only their chunks)

A capsule wraps the file key for its recipients, never for its issuer; the owner's key
is in her own stanza, kept in this home when she put the file, so ``get`` needs her
passphrase and works only in the home that put the file (``ipfs-share files`` lists
them). To read what someone shared with you, use ``ipfs-share open CAPSULE``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ipfs_share.cli._shared import acting, open_mesh, parse_range
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.opening import write_plaintext
from ipfs_share.cli.passphrase import add_passphrase_option
from ipfs_share.errors import InvalidInputError
from ipfs_share.formats.cid import normalize_cid

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    get = subparsers.add_parser(
        "get",
        help="read a file you put (no capsule needed): stdout, or saved with -o",
        description="Decrypt a file this home put, as its owner, and output the plaintext. "
        "For a file someone shared with you, use 'ipfs-share open CAPSULE'.",
    )
    get.add_argument("cid", metavar="CID", help="the content CID that put printed")
    get.add_argument(
        "-o", "--output", type=Path, metavar="OUT", help="save to OUT, atomically (default stdout)"
    )
    get.add_argument(
        "--range", metavar="A-B", help="only bytes A to B (both included); A- runs to the end"
    )
    add_passphrase_option(get)
    get.set_defaults(handler=_get)


async def _get(args: argparse.Namespace, ctx: Context) -> None:
    cid = normalize_cid(args.cid)
    span = None if args.range is None else parse_range(args.range)
    if args.output is None and ctx.json:
        raise InvalidInputError(
            "--json needs -o: without it, stdout carries the file",
            hint="pass -o OUT, or leave out --json",
        )
    async with open_mesh(args, ctx) as mesh:
        opened = await mesh.files.open_own(cid, as_=acting(args))
        if args.output is None:
            ctx.note(f"reading your file {opened.name or cid}")
        await write_plaintext(args, ctx, opened, span, "your own file")
