"""``ipfs-share open`` and ``ipfs-share capability issue``: read what was shared with you.

::

    $ ipfs-share open bafyrei... > notes.txt     (the plaintext on stdout, binary-safe)
    $ ipfs-share open bafyrei... -o report.pdf   (saved atomically)
    $ ipfs-share open bafyrei... --range 0-1023  (bytes 0..1023, fetching only their chunks)
    $ ipfs-share open 'ipfs-share:bafyrei...?from=did:key:z6Mk...'   (a link: the sender
                                                 becomes a contact once it opens)
    $ ipfs-share capability issue bafyrei... --to bob -o bob.cap
    $ ipfs-share --as bob open bafyrei... --capability bob.cap -o out

Open checks, in order, and fails closed: the capsule's signature, its expiry, the
sharer's revocation list (resolved fresh), the policy, the capability, the unwrap of the
file key (and its commitment to the capsule's issuer and terms), and the content's
integrity as it is read. It says who shared what it opened (on stderr when the plaintext
goes to stdout; ``issuer`` and ``issuer_name`` with ``--json``). A view-only share
(``--no-download``) makes ``-o`` refuse; that is advice to honest clients, which a
modified client can ignore.

With an agent running for the home (``ipfs-share serve``, identity unlocked), the agent
opens it and streams the plaintext over its socket; this module then imports nothing
but the standard library and :mod:`ipfs_share.agent.remote`, so the command starts
fast. Without one, or with the identity locked in it, the command opens it itself.
"""

from __future__ import annotations

import argparse
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipfs_share import paths
from ipfs_share.agent.remote import AgentClient, Opened, agent_for
from ipfs_share.cli._fast import (
    SNIFF,
    binary_stdout,
    parse_range,
    progress,
    refuse_binary_on_tty,
    save_chunks,
    stdout_writer,
)
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import add_passphrase_option
from ipfs_share.cli.progress import Progress
from ipfs_share.cli.text import printable
from ipfs_share.errors import (
    AgentNotRunningError,
    DownloadNotAllowedError,
    IdentityLockedError,
    InvalidInputError,
    NodeTimeoutError,
)

if TYPE_CHECKING:
    from ipfs_share.services.opened import OpenedFile

__all__ = ["VIEW_ONLY_HINT", "register", "write_plaintext"]

VIEW_ONLY_HINT = (
    "the owner shared it for viewing only: read it without -o (to a pager or a pipe); this "
    "is advice to honest clients, which a modified client can ignore"
)
RANGE_STEP = 4 << 20  # range reads go in steps of this (a multiple of the 64 KiB chunk)
LINK_SCHEME = "ipfs-share:"  # formats.introduction.LINK_SCHEME, without importing it


def register(subparsers: Subparsers) -> None:
    op = subparsers.add_parser(
        "open",
        help="open a share: the plaintext on stdout, or saved with -o",
        description="Check a capsule (signature, expiry, revocation, policy, capability, "
        "key, integrity) as the acting identity and output the plaintext.",
    )
    op.add_argument(
        "capsule",
        metavar="CAPSULE",
        help="the capsule ID the sharer sent (what 'share' printed, bafyrei...; for a file "
        "you put yourself, use 'ipfs-share get CID')",
    )
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


def _shared_by(issuer: str | None, issuer_name: str | None) -> str:
    """Who issued the capsule, as a person should read it: a name this home gave that did,
    or the did marked as a stranger."""
    if issuer is None:
        return "shared by an unknown issuer"
    if issuer_name is None:
        return f"shared by {issuer} (not one of your contacts)"
    return f"shared by {printable(issuer_name)} ({issuer})"


def _label(name: str | None, otherwise: str) -> str:
    """The file's name as a person should see it (the sharer chose it: escaped)."""
    return printable(name) if name else otherwise


def _open(args: argparse.Namespace, ctx: Context) -> Any:
    """Through the agent if there is one (synchronous, light), else here (a coroutine)."""
    if args.output is None and ctx.json:
        raise InvalidInputError(
            "--json needs -o: without it, stdout carries the file",
            hint="pass -o OUT, or leave out --json",
        )
    if args.capsule.strip().startswith(LINK_SCHEME):
        return _open_link(args, ctx)
    client = None if ctx.api is not None else agent_for(paths.home_dir())
    if client is not None:
        try:
            _open_via_agent(client, args, ctx)
            return None
        except (AgentNotRunningError, IdentityLockedError) as exc:
            if isinstance(exc, IdentityLockedError):
                ctx.note("the agent holds this identity locked; unlocking here for this command")
    return _open_here(args, ctx)


async def _open_link(args: argparse.Namespace, ctx: Context) -> None:
    """A link carries the capsule and its sender's did: open the capsule, then make the
    sender a contact, so the inbox reads its mailbox from now on."""
    from ipfs_share.cli._delegate import poke_agent
    from ipfs_share.formats.introduction import parse_link
    from ipfs_share.local.state import StateDB
    from ipfs_share.services.identities import IdentityService
    from ipfs_share.services.introductions import IntroductionService

    text = args.capsule.strip()
    link = parse_link(text)
    args.capsule = link.capsule
    result = _open(args, ctx)
    if hasattr(result, "__await__"):
        await result
    home = paths.home_dir()
    db = StateDB(home)
    intros = IntroductionService(home, None, IdentityService(home, None, db=db), db)
    try:
        _, petname = intros.register_link(text)
    finally:
        intros.close()
        db.close()
    if petname is not None:
        ctx.note(
            f"added the sender {link.sender} as contact {petname}: its mailbox is read from now on"
        )
        poke_agent(ctx)


def _open_via_agent(client: AgentClient, args: argparse.Namespace, ctx: Context) -> None:
    span = None if args.range is None else parse_range(args.range)
    opened = client.open(
        args.capsule.strip(),
        as_=getattr(args, "as_", None),
        max_staleness=args.max_staleness,
        capability=_read_token(args.capability),
        save=args.output is not None,
        span=span,
    )
    label = f"open {_label(opened.name, opened.capsule)}"
    by = _shared_by(opened.issuer, opened.issuer_name)
    if args.output is None:  # stdout carries the plaintext: say who shared it on stderr
        ctx.note(f"opening {_label(opened.name, opened.capsule)}, {by}")
        with progress(ctx, label, opened.length) as bar:
            _chunks_to_stdout(ctx, opened, bar)
        return
    with progress(ctx, label, opened.length) as bar:
        saved = save_chunks(args.output, opened.chunks(), bar)
    info: dict[str, object] = {**opened.describe(), "saved_to": str(saved)}
    if span is None:
        text = f"saved {_label(opened.name, 'the file')} ({opened.size} bytes) to {saved}, {by}"
    else:
        last = opened.offset + opened.length - 1
        info["range"] = [opened.offset, last]
        text = f"saved bytes {opened.offset}-{last} ({opened.length} bytes) to {saved}, {by}"
    ctx.emit(info, text)


def _chunks_to_stdout(ctx: Context, opened: Opened, bar: Progress) -> None:
    write = stdout_writer(ctx)
    done = 0
    chunks = opened.chunks()
    try:
        for piece in chunks:
            if done == 0 and ctx.stdout.isatty():
                refuse_binary_on_tty(ctx, piece[:SNIFF])
            write(piece)
            done += len(piece)
            bar.update(done)
    finally:
        chunks.close()


async def _open_here(args: argparse.Namespace, ctx: Context) -> None:
    from ipfs_share.cli._shared import acting, open_mesh, searching
    from ipfs_share.formats.cid import normalize_cid

    capsule = normalize_cid(args.capsule)
    span = None if args.range is None else parse_range(args.range)
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
                f"the owner shared {_label(opened.name, capsule)} for viewing only; not saved",
                hint=VIEW_ONLY_HINT,
            )
        whose = _shared_by(opened.issuer, opened.issuer_name)
        if args.output is None:  # stdout carries the plaintext: say who shared it on stderr
            ctx.note(f"opening {_label(opened.name, capsule)}, {whose}")
        await write_plaintext(args, ctx, opened, span, whose)


async def write_plaintext(
    args: argparse.Namespace,
    ctx: Context,
    opened: OpenedFile,
    span: tuple[int, int | None] | None,
    whose: str,
) -> None:
    """Write an opened file where ``args`` say: ``--range``, ``-o`` (atomically), or
    stdout (never binary onto a terminal); ``whose`` ends the saved message ("shared by
    ...", "your file")."""
    label = _label(opened.name, opened.capsule or opened.cid)
    if span is not None:
        await _output_range(args, ctx, opened, *span, whose=whose)
    elif args.output is not None:
        with progress(ctx, f"open {label}", opened.size) as bar:
            saved = await opened.save(args.output, progress=bar.update)
        info = {**_describe(opened), "saved_to": str(saved)}
        ctx.emit(
            info,
            f"saved {_label(opened.name, 'the file')} ({opened.size} bytes) to {saved}, {whose}",
        )
    else:
        with progress(ctx, f"open {label}", opened.size) as bar:
            await _to_stdout(ctx, aiter(opened), bar)


async def _output_range(
    args: argparse.Namespace,
    ctx: Context,
    opened: OpenedFile,
    offset: int,
    length: int | None,
    *,
    whose: str,
) -> None:
    if offset > opened.size:
        raise InvalidInputError(
            f"expected a range that starts within the {opened.size}-byte file, found {offset}"
        )
    end = opened.size if length is None else min(opened.size, offset + length)
    with progress(ctx, f"open {_label(opened.name, opened.capsule or '')}", end - offset) as bar:
        if args.output is None:
            await _to_stdout(ctx, opened.iter_range(offset, end - offset, step=RANGE_STEP), bar)
            return
        await opened.save(args.output, offset=offset, length=end - offset, progress=bar.update)
    last = end - 1
    info = {**_describe(opened), "saved_to": str(args.output), "range": [offset, last]}
    ctx.emit(
        info,
        f"saved bytes {offset}-{last} ({end - offset} bytes) to {args.output}, {whose}",
    )


def _write_all(ctx: Context, data: bytes) -> None:
    out = binary_stdout(ctx)
    out.write(data)
    out.flush()


async def _to_stdout(
    ctx: Context, pieces: AsyncIterator[bytes] | AsyncIterator[bytearray], bar: Progress
) -> None:
    """Write plaintext pieces to stdout, each straight to its descriptor in a thread while
    the next is decrypted (:func:`~ipfs_share.services.opened.write_behind`); on a
    terminal, only if the first looks like text (looked at before any byte is written)."""
    from ipfs_share.services.opened import write_behind

    async def checked() -> AsyncIterator[bytes | bytearray]:
        first = True
        async for piece in pieces:
            if first and ctx.stdout.isatty():
                refuse_binary_on_tty(ctx, bytes(piece[:SNIFF]))
            first = False
            yield piece

    await write_behind(checked(), stdout_writer(ctx), bar.update)


# -- capability -----------------------------------------------------------------------------


async def _issue(args: argparse.Namespace, ctx: Context) -> None:
    import asyncio

    from ipfs_share.cli._delegate import run_operation
    from ipfs_share.cli._shared import fmt_time
    from ipfs_share.formats.cid import normalize_cid
    from ipfs_share.local.files import write_atomic

    capsule = normalize_cid(args.capsule)
    if args.output is None and not ctx.json and ctx.stdout.isatty():
        raise InvalidInputError(
            "refusing to write a binary token to the terminal",
            hint="pass -o FILE (or pipe it, or --json for base64)",
        )
    params = {
        "capsule": capsule,
        "to": args.to,
        "valid_for": args.valid_for,
        "as": getattr(args, "as_", None),
    }
    info = await run_operation(args, ctx, "capability", params)
    token = base64.b64decode(str(info.pop("token_base64")))
    text = (
        f"issued capability {info['capability']} for {args.to} to open {capsule}, "
        f"valid until {fmt_time(int(str(info['expires'])))}"
    )
    if args.output is not None:
        await asyncio.to_thread(write_atomic, args.output, token)
        ctx.emit({**info, "file": str(args.output)}, f"{text}: wrote {args.output}")
    elif ctx.json:
        ctx.emit({**info, "token_base64": base64.b64encode(token).decode()}, "")
    else:
        await asyncio.to_thread(_write_all, ctx, token)
        ctx.note(text)
