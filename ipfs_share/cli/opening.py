"""``ipfs-share open`` and ``ipfs-share capability issue``: read what was shared with you.

::

    $ ipfs-share open bafyrei... > notes.txt     (the plaintext on stdout, binary-safe)
    $ ipfs-share open bafyrei... -o report.pdf   (saved atomically)
    $ ipfs-share open bafyrei... --range 0-1023  (bytes 0..1023, fetching only their chunks)
    $ ipfs-share capability issue bafyrei... --to bob -o bob.cap
    $ ipfs-share --as bob open bafyrei... --capability bob.cap -o out

Open checks, in order, and fails closed: the capsule's signature, its expiry, the
sharer's revocation list (resolved fresh), the policy, the capability, the unwrap of the
file key (and its commitment to the capsule's issuer and terms), and the content's
integrity as it is read. It says who shared what it opened (on stderr when the plaintext
goes to stdout; ``issuer`` and ``issuer_name`` with ``--json``). A view-only share
(``--no-download``) makes ``-o`` refuse; that is advice to honest clients, which a
modified client can ignore.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

from ipfs_share.cli._shared import (
    acting,
    binary_stdout,
    fmt_time,
    open_mesh,
    parse_range,
    progress,
    searching,
)
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import add_passphrase_option
from ipfs_share.cli.progress import Progress
from ipfs_share.cli.text import printable
from ipfs_share.errors import DownloadNotAllowedError, InvalidInputError, NodeTimeoutError
from ipfs_share.formats.capsule import decode_capability
from ipfs_share.formats.cid import normalize_cid
from ipfs_share.local.files import write_atomic
from ipfs_share.services.opened import OpenedFile

__all__ = ["VIEW_ONLY_HINT", "register"]

VIEW_ONLY_HINT = (
    "the owner shared it for viewing only: read it without -o (to a pager or a pipe); this "
    "is advice to honest clients, which a modified client can ignore"
)
SNIFF = 8192  # bytes looked at before writing to a terminal
RANGE_STEP = 4 << 20  # range reads go in steps of this (a multiple of the 64 KiB chunk)


def register(subparsers: Subparsers) -> None:
    op = subparsers.add_parser(
        "open",
        help="open a share: the plaintext on stdout, or saved with -o",
        description="Check a capsule (signature, expiry, revocation, policy, capability, "
        "key, integrity) as the acting identity and output the plaintext.",
    )
    op.add_argument("capsule", metavar="CAPSULE", help="the capsule ID the sharer sent")
    op.add_argument(
        "-o",
        "--output",
        type=_output_path,
        metavar="OUT",
        help="save to the file OUT, atomically, in a folder that exists (default: stdout)",
    )
    op.add_argument(
        "--range", metavar="A-B", help="only bytes A to B (both included); A- runs to the end"
    )
    op.add_argument(
        "--capability", type=Path, metavar="FILE", help="a capability token, if the share needs one"
    )
    op.add_argument(
        "--max-staleness",
        type=float,
        metavar="SECONDS",
        help="if the sharer's revocation list cannot be resolved, accept one checked within "
        "SECONDS (default: fail closed)",
    )
    add_passphrase_option(op)
    op.set_defaults(handler=_open)

    cap = subparsers.add_parser("capability", help="capability tokens for shares that require them")
    sub = cap.add_subparsers(dest="capability_command", metavar="COMMAND", required=True)
    issue = sub.add_parser(
        "issue",
        help="issue a token letting someone open a share",
        description="Sign a capability token (as the identity the capsule names as its "
        "capability issuer) for one opener; write its bytes to -o FILE or a pipe.",
    )
    issue.add_argument("capsule", metavar="CAPSULE")
    issue.add_argument("--to", required=True, metavar="NAME|DID", help="who may open with it")
    issue.add_argument(
        "--valid-for", default="1d", metavar="DURATION", help="90s, 15m, 12h, 1d, 2w (default 1d)"
    )
    issue.add_argument("-o", "--output", type=Path, metavar="FILE", help="file to write")
    add_passphrase_option(issue)
    issue.set_defaults(handler=_issue)


# -- open -----------------------------------------------------------------------------------


def _output_path(text: str) -> Path:
    """``-o OUT``: a file to create in a folder that exists (checked before any network
    call; a folder is not created for it, and a folder is not a file name)."""
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected a file to save to, found the folder {text!r} (name the file in it, "
            f"such as {os.path.join(text, 'report.pdf')!r})"
        )
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected the folder {str(folder)!r} to exist, found "
            f"{'a file' if folder.exists() else 'nothing'} there (create it first: mkdir -p)"
        )
    return path


def _read_token(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the capability file {path}: {exc.strerror}") from exc


def _looks_binary(sample: bytes) -> bool:
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 3  # a character cut at the sample's end is fine
    return False


def _describe(opened: OpenedFile) -> dict[str, object]:
    return {
        "capsule": opened.capsule,
        "content": opened.cid,
        "name": opened.name,
        "media_type": opened.media_type,
        "size": opened.size,
        "allow_download": opened.allow_download,
        "issuer": opened.issuer,
        "issuer_name": opened.issuer_name,
    }


def _shared_by(opened: OpenedFile) -> str:
    """Who issued the capsule, as a person should read it: a name this home gave that did,
    or the did marked as a stranger."""
    if opened.issuer is None:
        return "shared by an unknown issuer"
    if opened.issuer_name is None:
        return f"shared by {opened.issuer} (not one of your contacts)"
    return f"shared by {printable(opened.issuer_name)} ({opened.issuer})"


def _label(opened: OpenedFile, otherwise: str) -> str:
    """The file's name as a person should see it (the sharer chose it: escaped)."""
    return printable(opened.name) if opened.name else otherwise


async def _open(args: argparse.Namespace, ctx: Context) -> None:
    capsule = normalize_cid(args.capsule)
    span = None if args.range is None else parse_range(args.range)
    if args.output is None and ctx.json:
        raise InvalidInputError(
            "--json needs -o: without it, stdout carries the file",
            hint="pass -o OUT, or leave out --json",
        )
    token = _read_token(args.capability)
    async with open_mesh(args, ctx, max_staleness=args.max_staleness) as mesh:
        try:
            with searching(ctx, mesh, f"capsule {capsule}"):
                if await mesh.files.is_keychain_file(capsule):  # a file put with --keychain
                    opened = await mesh.files.open_keychain_file(capsule, as_=acting(args))
                else:
                    opened = await mesh.share.open_capsule(
                        capsule, as_=acting(args), capability=token
                    )
        except NodeTimeoutError as exc:
            raise NodeTimeoutError(
                f"could not find {capsule} in time: {exc.message}",
                hint="check the capsule ID (the one 'share' printed); the sharer's node must "
                "be online and connected to yours ('ipfs-share node peers', 'node connect'); "
                "wait longer with --timeout SECONDS",
            ) from exc
        if args.output is not None and not opened.allow_download:
            # OpenedFile.save refuses too; a range is checked here, before anything is read.
            raise DownloadNotAllowedError(
                f"the owner shared {_label(opened, capsule)} for viewing only; not saved",
                hint=VIEW_ONLY_HINT,
            )
        if args.output is None:  # stdout carries the plaintext: say who shared it on stderr
            ctx.note(f"opening {_label(opened, capsule)}, {_shared_by(opened)}")
        if span is not None:
            await _output_range(args, ctx, opened, *span)
        elif args.output is not None:
            with progress(ctx, f"open {_label(opened, capsule)}", opened.size) as bar:
                saved = await opened.save(args.output, progress=bar.update)
            info = {**_describe(opened), "saved_to": str(saved)}
            ctx.emit(
                info,
                f"saved {_label(opened, 'the file')} ({opened.size} bytes) to {saved}, "
                f"{_shared_by(opened)}",
            )
        else:
            with progress(ctx, f"open {_label(opened, capsule)}", opened.size) as bar:
                await _to_stdout(ctx, aiter(opened), bar)


async def _output_range(
    args: argparse.Namespace, ctx: Context, opened: OpenedFile, offset: int, length: int | None
) -> None:
    if offset > opened.size:
        raise InvalidInputError(
            f"expected a range that starts within the {opened.size}-byte file, found {offset}"
        )
    end = opened.size if length is None else min(opened.size, offset + length)
    with progress(ctx, f"open {_label(opened, opened.capsule or '')}", end - offset) as bar:
        if args.output is None:
            await _to_stdout(ctx, opened.iter_range(offset, end - offset, step=RANGE_STEP), bar)
            return
        await opened.save(args.output, offset=offset, length=end - offset, progress=bar.update)
    last = end - 1
    info = {**_describe(opened), "saved_to": str(args.output), "range": [offset, last]}
    ctx.emit(
        info,
        f"saved bytes {offset}-{last} ({end - offset} bytes) to {args.output}, "
        f"{_shared_by(opened)}",
    )


def _refuse_binary_on_tty(ctx: Context, sample: bytes) -> None:
    if ctx.stdout.isatty() and _looks_binary(sample):
        raise InvalidInputError(
            "refusing to write binary data to the terminal",
            hint="save it with -o FILE, or pipe it into another command",
        )


def _write_all(ctx: Context, data: bytes) -> None:
    out = binary_stdout(ctx)
    out.write(data)
    out.flush()


async def _to_stdout(
    ctx: Context, pieces: AsyncIterator[bytes] | AsyncIterator[bytearray], bar: Progress
) -> None:
    """Write plaintext pieces to stdout; on a terminal, only if the first looks like text
    (it is looked at before any byte is written)."""
    out = binary_stdout(ctx)
    done = 0
    first = True
    async for piece in pieces:
        if first and ctx.stdout.isatty():
            _refuse_binary_on_tty(ctx, bytes(piece[:SNIFF]))
        first = False
        await asyncio.to_thread(out.write, piece)
        done += len(piece)
        bar.update(done)
    await asyncio.to_thread(out.flush)


# -- capability -----------------------------------------------------------------------------


async def _issue(args: argparse.Namespace, ctx: Context) -> None:
    capsule = normalize_cid(args.capsule)
    if args.output is None and not ctx.json and ctx.stdout.isatty():
        raise InvalidInputError(
            "refusing to write a binary token to the terminal",
            hint="pass -o FILE (or pipe it, or --json for base64)",
        )
    async with open_mesh(args, ctx) as mesh:
        token = await mesh.share.issue_capability(
            capsule, args.to, valid_for=args.valid_for, as_=acting(args)
        )
    decoded = decode_capability(token)
    info: dict[str, object] = {
        "capability": decoded.cid,
        "capsule": capsule,
        "issuer": decoded.issuer,
        "audience": decoded.aud,
        "not_before": decoded.nbf,
        "expires": decoded.exp,
    }
    text = (
        f"issued capability {decoded.cid} for {args.to} to open {capsule}, "
        f"valid until {fmt_time(decoded.exp)}"
    )
    if args.output is not None:
        await asyncio.to_thread(write_atomic, args.output, token)
        ctx.emit({**info, "file": str(args.output)}, f"{text}: wrote {args.output}")
    elif ctx.json:
        ctx.emit({**info, "token_base64": base64.b64encode(token).decode()}, "")
    else:
        await asyncio.to_thread(_write_all, ctx, token)
        ctx.note(text)
