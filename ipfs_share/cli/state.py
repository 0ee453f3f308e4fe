"""``ipfs-share state show|recover``: the home's state database.

::

    $ ipfs-share state show
    /home/me/.local/share/ipfs-share/state.sqlite3: version 4
    $ ipfs-share state recover --yes      # only when state_missing refused the home

A home whose key files are there but whose database is missing or empty is refused
(``state_missing``): starting a new database silently would restart what the home signs
and forget the marks that protect it against old answers. ``recover`` starts one on
purpose, after a backup could not be restored.
"""

from __future__ import annotations

import argparse

from ipfs_share import paths
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.errors import InvalidInputError
from ipfs_share.local.state import StateDB

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    state = subparsers.add_parser("state", help="the home's state database")
    sub = state.add_subparsers(dest="state_command", metavar="COMMAND", required=True)
    sub.add_parser("show", help="where it is and its version").set_defaults(handler=_show)
    recover = sub.add_parser(
        "recover",
        help="start a new state database in a home whose database is missing",
        description="Create a new, empty state database next to the existing key files. "
        "Restore the old one from a backup instead if you can: the new one knows no shares, "
        "files, inbox or marks of what you read.",
    )
    recover.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    recover.set_defaults(handler=_recover)


def _show(args: argparse.Namespace, ctx: Context) -> None:
    db = StateDB(paths.home_dir())
    try:
        (version,) = db.database.one("PRAGMA user_version") or (0,)
        recovered = db.meta.get("recovered_at")
    finally:
        db.close()
    ctx.emit(
        {"path": str(db.path), "version": version, "recovered_at": recovered},
        f"{db.path}: version {version}" + (f" (recovered at {recovered})" if recovered else ""),
    )


def _recover(args: argparse.Namespace, ctx: Context) -> None:
    if not args.yes:
        raise InvalidInputError(
            "recover starts a new, empty state database; pass --yes to do it",
            hint="restore state.sqlite3 from a backup instead if you have one",
        )
    db = StateDB(paths.home_dir(), recover=True)
    db.close()
    ctx.emit({"path": str(db.path), "recovered": True}, f"started a new state database {db.path}")
