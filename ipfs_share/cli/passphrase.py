"""Where the CLI gets passphrases: a file, the environment, or a prompt; never argv.

Order: ``--passphrase-file FILE`` (its first line), then ``IPFS_SHARE_PASSPHRASE``, then a
prompt on the terminal (asked twice for a new passphrase). Without a terminal and without
either, the command fails with a hint instead of hanging.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ipfs_share.errors import InvalidInputError, PassphraseRequiredError

# services.identities.PASSPHRASE_ENV, named again so that commands which start fast (a
# delegated open) need not import the services to register their options.
PASSPHRASE_ENV = "IPFS_SHARE_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
PassphraseSource = Callable[[str], bytes]

__all__ = ["PASSPHRASE_ENV", "add_passphrase_option", "passphrase_source"]


def add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help=f"read the passphrase from FILE's first line (else {PASSPHRASE_ENV}, else a prompt)",
    )


def passphrase_source(args: argparse.Namespace) -> PassphraseSource:
    path: Path | None = getattr(args, "passphrase_file", None)

    def source(prompt: str) -> bytes:
        if path is not None:
            try:
                line = (
                    path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
                )
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidInputError(f"cannot read the passphrase file {path}: {exc}") from exc
            if not line:
                raise PassphraseRequiredError(f"the passphrase file {path} is empty")
            return line.encode()
        value = os.environ.get(PASSPHRASE_ENV)
        if value:
            return value.encode()
        if not sys.stdin.isatty():
            raise PassphraseRequiredError(
                f"{prompt}: no passphrase given and no terminal to ask on",
                hint=f"set {PASSPHRASE_ENV} or pass --passphrase-file FILE",
            )
        first = getpass.getpass(f"{prompt}: ")
        if prompt.startswith("new") and getpass.getpass("again: ") != first:
            raise InvalidInputError("the two passphrases differ")
        if not first:
            raise PassphraseRequiredError("an empty passphrase protects nothing")
        return first.encode()

    return source
