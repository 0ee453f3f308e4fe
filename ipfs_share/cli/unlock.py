"""``ipfs-share unlock`` and ``ipfs-share lock``: keys held by the agent, for a while.

::

    $ ipfs-share unlock --as bob --for 8h     # asks once; the agent holds bob's keys
    unlocked bob until 2026-12-01 18:00:00 UTC
    $ ipfs-share open bafyrei... --as bob     # no passphrase: the agent opens it
    $ ipfs-share lock                          # forget them all (or --as NAME)

The passphrase is read here (``--passphrase-file``, ``IPFS_SHARE_PASSPHRASE``, or a
prompt) and handed to the agent over its unix socket (0600, in the 0700 home); the agent
checks it, keeps the unlocked keys in memory only, and never hands key bytes back. The
unlock route exists on that socket only, never on TCP.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ipfs_share import paths
from ipfs_share.agent.remote import AgentClient
from ipfs_share.cli.common import Context, Subparsers
from ipfs_share.cli.passphrase import add_passphrase_option, passphrase_source
from ipfs_share.errors import AgentNotRunningError, InvalidInputError

__all__ = ["register"]

FOREVER = ("forever", "never")  # --for forever: until the agent stops


def register(subparsers: Subparsers) -> None:
    unlock = subparsers.add_parser(
        "unlock",
        help="unlock an identity in the agent, for a while",
        description="Ask the passphrase once and let the agent hold the identity's keys in "
        "memory for DURATION; commands that need them then go through the agent.",
    )
    unlock.add_argument(
        "--for",
        dest="duration",
        default="8h",
        metavar="DURATION",
        help="how long (90s, 15m, 8h, 1d, or forever: until the agent stops; default 8h)",
    )
    add_passphrase_option(unlock)
    unlock.set_defaults(handler=_unlock)
    lock = subparsers.add_parser(
        "lock",
        help="forget unlocked keys in the agent",
        description="The agent forgets the keys of the identity given with --as, or of all.",
    )
    lock.set_defaults(handler=_lock)


def _client() -> AgentClient:
    home = paths.home_dir()
    client = AgentClient.find(home)
    if client is None:
        raise AgentNotRunningError(
            f"no agent is running for {home}",
            hint="start one with 'ipfs-share serve'; without an agent every command unlocks "
            "by itself",
        )
    return client


def _seconds(text: str) -> float | None:
    if text.strip().lower() in FOREVER:
        return None
    from ipfs_share.services.share import parse_duration

    try:
        seconds = parse_duration(text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--for: {exc.message}", hint="or --for forever") from None
    return None if seconds is None else float(seconds)


def _unlock(args: argparse.Namespace, ctx: Context) -> None:
    from ipfs_share.local.keystore import Keystore

    seconds = _seconds(args.duration)
    client = _client()
    home = paths.home_dir()
    keystore = Keystore(home)
    name = getattr(args, "as_", None)
    if name is None:
        from ipfs_share.services.identities import IdentityService

        key_file = keystore.get(IdentityService(home, None).default().did)
    else:
        key_file = keystore.get(name)
    secret = (
        passphrase_source(args)(f"passphrase for {key_file.name}") if key_file.encrypted else b""
    )
    done = client.unlock(key_file.did, secret, seconds)["unlocked"]
    until = done["until"]
    when = (
        "until the agent stops"
        if until is None
        else "until " + datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    )
    ctx.emit(done, f"unlocked {done['name']} {when}")


def _lock(args: argparse.Namespace, ctx: Context) -> None:
    locked = _client().lock(getattr(args, "as_", None))["locked"]
    ctx.emit(
        {"locked": locked}, f"locked {len(locked)} identit{'y' if len(locked) == 1 else 'ies'}"
    )
