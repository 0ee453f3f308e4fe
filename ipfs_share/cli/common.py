"""What every CLI command module shares: the context a handler gets, and output helpers.

A command module under ``ipfs_share/cli/`` exposes ``register(subparsers)``; the
dispatcher in :mod:`ipfs_share.cli.main` finds it by itself. A handler takes the parsed
arguments and a :class:`Context`, may be ``async``, and returns an exit code (None is 0).
Errors are raised, never printed: the dispatcher prints them and picks the exit code.

>>> import argparse
>>> def register(subparsers: Subparsers) -> None:
...     parser = subparsers.add_parser("hello", help="say hello")
...     parser.add_argument("name")
...     parser.set_defaults(handler=hello)
>>> async def hello(args: argparse.Namespace, ctx: Context) -> None:
...     ctx.emit({"greeting": f"hello {args.name}"}, f"hello {args.name}")
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TextIO, TypeAlias

from ipfs_share.cli.text import printable_text

__all__ = ["Context", "Handler", "Subparsers"]

# What register() receives: the object returned by ArgumentParser.add_subparsers().
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

Handler: TypeAlias = Callable[[argparse.Namespace, "Context"], "int | Awaitable[int | None] | None"]


class Context:
    """The global options, and where results (stdout) and notes (stderr) go.

    A plain class, not a dataclass: every command imports this module, and
    ``dataclasses`` (with ``inspect``) would cost a delegated ``open`` a tenth of its
    start-up."""

    def __init__(
        self,
        json: bool = False,
        api: str | None = None,
        cluster: str | None = None,  # --cluster (None: $IPFS_SHARE_CLUSTER, else no cluster)
        quiet: bool = False,  # -q: notes are not printed (errors still are)
        timeout: float | None = None,  # --timeout: seconds a search may take
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json = json
        self.api = api
        self.cluster = cluster
        self.quiet = quiet
        self.timeout = timeout
        self.stdout: TextIO = sys.stdout if stdout is None else stdout
        self.stderr: TextIO = sys.stderr if stderr is None else stderr

    def __repr__(self) -> str:
        return (
            f"Context(json={self.json!r}, api={self.api!r}, cluster={self.cluster!r}, "
            f"quiet={self.quiet!r}, timeout={self.timeout!r})"
        )

    def emit(self, data: Mapping[str, Any], text: str) -> None:
        """Print a result: ``data`` as one JSON object with ``--json``, else ``text``.

        ``text`` keeps its lines but shows any other control character as an escape (the
        last guard; printers pass names a peer controls through
        :func:`~ipfs_share.cli.text.printable`, which escapes newlines too)."""
        if self.json:
            self.out(json.dumps(data, sort_keys=True))
        elif text:
            self.out(printable_text(text))

    def out(self, line: str, *, flush: bool = False) -> None:
        """Print ``line`` to stdout. A write the system refuses (a full disk, a quota) is
        a :class:`~ipfs_share.errors.StoreError` (an unbuffered stdout, as
        PYTHONUNBUFFERED makes it, fails here, not at the exit); a reader that left stays
        a :class:`BrokenPipeError`, which the CLI reports as such."""
        try:
            print(line, file=self.stdout, flush=flush)
        except BrokenPipeError:
            raise
        except OSError as exc:
            from ipfs_share.errors import StoreError

            raise StoreError(
                f"cannot write to stdout: {exc.strerror}",
                hint="free space where stdout goes, or send it elsewhere",
            ) from exc

    def note(self, text: str) -> None:
        """Tell the person something that is not the result (progress, what was chosen)."""
        if self.quiet:
            return
        print(f"ipfs-share: {printable_text(text)}", file=self.stderr)
