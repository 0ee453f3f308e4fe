"""Helpers of the commands that must start fast (``open`` through the agent): stdlib only.

Not a command module (the leading underscore keeps the dispatcher from loading it as one).
Nothing here imports aiohttp, nacl or the services: see :mod:`ipfs_share.agent.remote`.

>>> parse_range("0-9"), parse_range("100-")
((0, 10), (100, None))
>>> looks_binary(b"plain text"), looks_binary(b"\\x00\\x01")
(False, True)
"""

from __future__ import annotations

import io
import os
import re
import secrets
import select
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from ipfs_share.cli.common import Context
from ipfs_share.cli.progress import Progress
from ipfs_share.errors import InvalidInputError, StoreError

__all__ = [
    "BIG",
    "SNIFF",
    "binary_stdout",
    "looks_binary",
    "parse_range",
    "progress",
    "refuse_binary_on_tty",
    "save_chunks",
    "stdout_writer",
]

BIG = 4 << 20  # transfers smaller than this never get a progress bar
SNIFF = 8192  # bytes looked at before writing to a terminal
_RANGE = re.compile(r"^(\d+)-(\d*)$")


def parse_range(text: str) -> tuple[int, int | None]:
    """``A-B`` (bytes A to B, both included) as (offset, length); ``A-`` runs to the end."""
    m = _RANGE.match(text.strip())
    if m is None:
        raise InvalidInputError(
            f"expected a byte range such as 0-1023 (both ends included) or 4096-, found {text!r}"
        )
    start = int(m[1])
    if not m[2]:
        return start, None
    end = int(m[2])
    if end < start:
        raise InvalidInputError(f"expected the range's end >= its start ({start}), found {end}")
    return start, end - start + 1


def binary_stdout(ctx: Context) -> BinaryIO:
    """The byte stream under the text stdout, flushed so text and bytes keep their order."""
    ctx.stdout.flush()
    buffer: BinaryIO | None = getattr(ctx.stdout, "buffer", None)
    if buffer is None:  # pragma: no cover - stdout replaced by a text-only stream
        raise InvalidInputError("stdout takes no bytes here", hint="write to a file with -o")
    return buffer


def stdout_writer(ctx: Context) -> Callable[[bytes | bytearray | memoryview], object]:
    """A function that writes bytes to stdout whole, in order after what was printed.

    With a real stdout (a file, a pipe, /dev/null) it is ``os.write`` on the descriptor:
    no buffer layer and no copy, a short write to a pipe continued where it stopped, and
    the GIL released while the kernel takes the bytes (so another thread may decrypt the
    next piece meanwhile). A stdout with no descriptor (captured) gets its stream's
    ``write``. A write the system refuses (a full disk, a quota) is a
    :class:`~ipfs_share.errors.StoreError`; a reader that left stays a
    :class:`BrokenPipeError`, which the CLI reports as such."""
    out = binary_stdout(ctx)
    out.flush()
    try:
        fd = out.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return out.write

    def write(data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:  # a stdout left non-blocking by someone else
                select.select([], [fd], [])
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise StoreError(
                    f"cannot write to stdout: {exc.strerror}",
                    hint="free space where stdout goes, or write to a file elsewhere with -o",
                ) from exc

    return write


def progress(ctx: Context, label: str, total: int | None) -> Progress:
    """A progress bar for a transfer of ``total`` bytes (None: unknown), shown only on a
    terminal, without ``--json``, and for big or unknown sizes."""
    enabled = not ctx.json and (total is None or total >= BIG)
    return Progress(ctx.stderr, label, total, enabled=enabled)


def looks_binary(sample: bytes) -> bool:
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 3  # a character cut at the sample's end is fine
    return False


def refuse_binary_on_tty(ctx: Context, sample: bytes) -> None:
    if ctx.stdout.isatty() and looks_binary(sample):
        raise InvalidInputError(
            "refusing to write binary data to the terminal",
            hint="save it with -o FILE, or pipe it into another command",
        )


def save_chunks(path: Path, chunks: Iterable[bytes], bar: Progress | None = None) -> Path:
    """Write ``chunks`` to ``path`` atomically, 0600: a temp file beside it, fsync'd and
    renamed into place only once every chunk came (an error midway leaves no file)."""
    if path.is_dir():
        raise InvalidInputError(f"expected a file path, found the folder {path}")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    done = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            for piece in chunks:
                f.write(piece)
                done += len(piece)
                if bar is not None:
                    bar.update(done)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path
