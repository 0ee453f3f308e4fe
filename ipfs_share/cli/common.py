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
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json = json
        self.api = api
        self.cluster = cluster
        self.stdout: TextIO = sys.stdout if stdout is None else stdout
        self.stderr: TextIO = sys.stderr if stderr is None else stderr

    def __repr__(self) -> str:
        return f"Context(json={self.json!r}, api={self.api!r}, cluster={self.cluster!r})"

    def emit(self, data: Mapping[str, Any], text: str) -> None:
        """Print a result: ``data`` as one JSON object with ``--json``, else ``text``."""
        if self.json:
            print(json.dumps(data, sort_keys=True), file=self.stdout)
        elif text:
            print(text, file=self.stdout)

    def note(self, text: str) -> None:
        """Tell the person something that is not the result (progress, what was chosen)."""
        print(f"ipfs-share: {text}", file=self.stderr)
