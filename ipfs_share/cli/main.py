"""The ``ipfs-share`` command line: parse, dispatch, print results, map errors to exit codes.

Results go to stdout (one JSON object with ``--json``); errors go to stderr as::

    ipfs-share: error: <message>
    ipfs-share: hint: <what to do>

(with ``--json``, also as ``{"error": {"code", "message", "hint", "exit_code"}}`` on stdout).

Exit codes, from one table keyed by the error's ``code`` (:mod:`ipfs_share.status`, which
gives the HTTP API its statuses too). An error whose code is not in the table takes the
exit code of its nearest ancestor class that is, so a new subclass lands in its family's
code without touching this table.

====  ============================  ====================================================
exit  meaning                       error codes
====  ============================  ====================================================
0     success
1     generic failure               ipfs_share_error, share_error, internal errors
2     usage: bad command line       usage_error (argparse, a missing subcommand, a
                                    passphrase given on the command line)
3     invalid input                 invalid_input and its subclasses (cid_invalid,
                                    block_too_large, format_invalid,
                                    ipns_record_invalid, passphrase_required, ...),
                                    range_not_satisfiable, passphrase_invalid,
                                    identity_locked, identity_exists
4     node unreachable              node_unreachable
5     the node refused or failed    node_error, node_request_failed, node_timeout,
                                    node_version_unsupported, feature_unavailable,
                                    replication_failed (a cluster), pin_service_failed,
                                    pin_service_unauthorized, remote_pin_failed
6     not found                     not_found, identity_not_found, keychain_not_found
7     integrity: data changed,      integrity_error, stream_truncated,
      forged or damaged             signature_invalid, chain_invalid (feed_rollback,
                                    feed_fork), decryption_failed
8     node management failed        node_management_failed, kubo_install_failed,
                                    cluster_install_failed
9     local store                   store_error, state_missing, keychain_conflict
10    access denied                 recipient_not_authorized, key_unwrap_failed,
                                    policy_provider_required, policy_denied,
                                    capability_required, capability_invalid,
                                    permission_denied (a keychain permission not held)
11    share no longer valid         share_expired, share_revoked, share_replaced (a
                                    re-issued one names the capsule to open instead)
12    revocation not checkable      revocation_unavailable (retry, or --max-staleness)
13    download not allowed          download_not_allowed (view-only share: read it to
                                    stdout instead of saving; advice, not enforcement)
14    the agent                     agent_error, agent_running (one is running already),
                                    agent_not_running, unauthorized (the HTTP API's
                                    bearer token missing or wrong)
130   interrupted (Ctrl-C)
141   stdout closed early           (a reader such as ``head`` stopped reading)
====  ============================  ====================================================

signature_invalid, chain_invalid and decryption_failed are also invalid_input (the bytes
can never succeed as given), but they mean someone changed or forged data, so they get
the integrity code rather than 3.

Adding a command: put a module in ``ipfs_share/cli/`` exposing ``register(subparsers)``
(see :mod:`ipfs_share.cli.common`) and list its commands in :data:`COMMANDS`. Start-up
stays small because only the invoked command's module is imported (``open`` through the
agent loads no aiohttp, no nacl, no services); ``--help`` lists from the table. A
module that is not in the table still works, found by scanning the package (slower: every
module is then imported), and a test says which entry is missing. Modules must not define
``--api``, ``--cluster``, ``--json`` or ``--as`` themselves: every subcommand accepts the
global options (``--as NAME`` arrives as ``args.as_``: None means the default identity).
A command about the whole home rather than one identity sets ``as_applies=False`` in its
defaults, and ``--as`` then gets a note that it changes nothing.

>>> main(["--version"])                                # doctest: +ELLIPSIS
ipfs-share ... (Kubo v0...)
0
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ipfs_share import status
from ipfs_share.cli._entry import version
from ipfs_share.cli._help import finish as finish_help
from ipfs_share.cli._logs import LEVELS, configure_logging, level_for
from ipfs_share.cli._parsing import Parser, UsageError, refuse_secrets, wants_json
from ipfs_share.cli.common import Context
from ipfs_share.cli.hints import cli_hint
from ipfs_share.cli.text import printable
from ipfs_share.errors import IpfsShareError

__all__ = ["COMMANDS", "EXIT_CODES", "build_parser", "exit_code_for", "main"]

EXIT_OK = 0
EXIT_GENERIC = status.EXIT_GENERIC
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # as a shell reports a command killed by SIGPIPE

# From the one table of ipfs_share/status.py (which also gives the HTTP API its statuses).
EXIT_CODES: dict[str, int] = status.EXIT_CODES

# Every command, the module under ipfs_share/cli/ that registers it, and its one line of
# help (what `ipfs-share --help` lists without importing any command module).
COMMANDS: dict[str, tuple[str, str]] = {
    "identity": ("identity", "create, list, move, publish and resolve identities"),
    "contacts": ("contacts", "petnames for other people's identities; accept introductions"),
    "put": ("put", "encrypt a file and store it, pinned, on the node"),
    "files": ("put", "list or remove the files put from this home"),
    "share": ("share", "share a file you put with recipients; prints the capsule ID"),
    "shares": ("share", "the shares made from this home"),
    "open": ("opening", "open a share: the plaintext on stdout, or saved with -o"),
    "get": ("get", "read a file you put yourself (no capsule), like open"),
    "revoke": ("share", "revoke a share (and optionally re-key the content)"),
    "capability": ("opening", "capability tokens for shares that require them"),
    "send": ("mailbox", "send a capsule to a recipient's inbox (through your mailbox for them)"),
    "inbox": ("mailbox", "sync your contacts' mailboxes and list what arrived"),
    "outgoing": ("mailbox", "capsules you sent, and whether they were delivered or opened"),
    "cancel": ("mailbox", "withdraw a sent capsule nobody has picked up yet (revokes it)"),
    "serve": ("serve", "run the agent for this home in the foreground"),
    "agent": ("agent", "the agent's status, and its API token"),
    "unlock": ("unlock", "unlock an identity in the agent, for a while"),
    "lock": ("unlock", "forget unlocked keys in the agent"),
    "keychain": ("keychain", "keychains: keys shared in a group, with rotation and bans"),
    "republish": ("republish", "put this home's signed records on the node again"),
    "node": ("node", "install, start, stop and inspect the Kubo node ipfs-share manages"),
    "cluster": ("cluster", "run a local IPFS Cluster and set the home's replication"),
    "pin": ("pin", "remote pins through pinning services"),
    "state": ("state", "the home's state database"),
    "completion": ("completion", "print a shell completion script (bash, zsh or fish)"),
}

_VERSION = version()

# Modules in ipfs_share/cli/ that are not commands.
_NOT_COMMANDS = frozenset({"main", "common", "hints", "text"})


def exit_code_for(exc: IpfsShareError) -> int:
    """The exit code for an error: its code's row, else its nearest listed ancestor's.

    >>> from ipfs_share.errors import CidInvalidError, NodeUnreachableError
    >>> exit_code_for(CidInvalidError("x")), exit_code_for(NodeUnreachableError("x"))
    (3, 4)
    """
    return status.exit_code_for(exc)


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # On subcommands the defaults are SUPPRESS, so `ipfs-share --json node status` is not
    # undone by the subparser's own default; both positions work.
    default: Any = argparse.SUPPRESS
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--api",
        metavar="ADDR",
        default=None if top else default,
        help="Kubo RPC API as a multiaddr or URL (default: $IPFS_SHARE_API, the managed "
        "node, /ip4/127.0.0.1/tcp/5001)",
    )
    group.add_argument(
        "--cluster",
        metavar="URL",
        default=None if top else default,
        help="store on IPFS Cluster: a peer's REST API (comma-separated for failover), or "
        "'local' for the one 'ipfs-share cluster up' runs (default: $IPFS_SHARE_CLUSTER; "
        "its peers' Kubo APIs: $IPFS_SHARE_CLUSTER_KUBO)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if top else default,
        help="print results as JSON on stdout",
    )
    group.add_argument(
        "--as",
        dest="as_",
        metavar="NAME",
        default=None if top else default,
        help="act as this local identity (default: the one set by 'identity use', or the only one)",
    )
    _add_output_options(parser, group, top=top)


def _add_output_options(
    parser: argparse.ArgumentParser, group: argparse._ArgumentGroup, *, top: bool
) -> None:
    # A command's own --timeout or --quiet (node start, node install) keeps its meaning
    # there: a global option is added only under the names still free.
    default: Any = argparse.SUPPRESS

    def add(*names: str, **kwargs: Any) -> None:
        free = [n for n in names if n not in parser._option_string_actions]
        if free:
            group.add_argument(*free, **kwargs)

    add(
        "--timeout",
        dest="search_timeout",
        type=float,
        metavar="SECONDS",
        default=None if top else default,
        help="how long the node may search the network for a block or a record before "
        "giving up (default: $IPFS_SHARE_TIMEOUT, else 20)",
    )
    add(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else default,
        help="say more on stderr (-v: info, -vv: debug; never secrets)",
    )
    add(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else default,
        help="say nothing on stderr but errors",
    )
    add(
        "--log-level",
        choices=LEVELS,
        metavar="LEVEL",
        default=None if top else default,
        help="debug, info, warning or error (default: $IPFS_SHARE_LOG, else warning)",
    )


def _subparsers_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                found.append(sub)
                found.extend(_subparsers_of(sub))
    return found


def _command_modules() -> list[str]:
    """Every command module in the package (the slow path: for a command not in the table)."""
    import pkgutil

    import ipfs_share.cli

    names = [m.name for m in pkgutil.iter_modules(ipfs_share.cli.__path__)]
    return sorted(n for n in names if not n.startswith("_") and n not in _NOT_COMMANDS)


# Global options that take a value: the command is the first word that is not one of these
# (nor their values). `--opt=value` is one word and needs no skipping.
_VALUED = frozenset({"--api", "--as", "--cluster", "--timeout", "--log-level"})


def _command_name(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (None: none given, or only options)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _VALUED:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def _top_parser() -> tuple[Parser, Any]:
    parser = Parser(
        prog="ipfs-share",
        description="End-to-end encrypted sharing on IPFS, with no server but Kubo.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=_VERSION,
    )
    _add_global_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, subparsers


def _register(subparsers: Any, module_name: str) -> None:
    module = importlib.import_module(f"ipfs_share.cli.{module_name}")
    register = getattr(module, "register", None)
    if callable(register):
        register(subparsers)


def build_parser(command: str | None = "*") -> Parser:
    """The parser: global options plus the subcommands of ``command``'s module (``"*"``:
    every module; None: the table's names and help only, for ``--help``)."""
    parser, subparsers = _top_parser()
    if command is None:
        for name, (_, text) in COMMANDS.items():
            subparsers.add_parser(name, help=text)
    elif command in COMMANDS:
        _register(subparsers, COMMANDS[command][0])
    else:
        for name in _command_modules():
            _register(subparsers, name)
    for sub in _subparsers_of(parser):
        _add_global_options(sub, top=False)
    finish_help(parser)  # examples, defaults and the environment in every --help
    return parser


def _report(ctx: Context, code: str, message: str, hint: str, exit_code: int) -> None:
    # A message may quote what a peer named (a file, a petname): one line, escaped.
    print(f"ipfs-share: error: {printable(message)}", file=ctx.stderr)
    if hint:
        print(f"ipfs-share: hint: {printable(hint)}", file=ctx.stderr)
    if ctx.json:
        error = {"code": code, "message": message, "hint": hint, "exit_code": exit_code}
        try:
            print(json.dumps({"error": error}, sort_keys=True), file=ctx.stdout)
        except BrokenPipeError:
            _silence_stdout()
        except OSError:
            pass  # stdout takes no bytes (a full disk): stderr above said what failed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # before any command module loads: start-up is the cost
        print(_VERSION)
        return EXIT_OK
    refused = refuse_secrets(argv)  # before parsing: nothing may echo the value
    if refused is not None:
        return _usage_error(refused, wants_json(argv))
    parser = build_parser(_command_name(argv))
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage_error(exc, wants_json(argv))
    except SystemExit as exc:  # --help and --version (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ctx = Context(
        json=args.json,
        api=args.api,
        cluster=args.cluster,
        quiet=args.quiet and not args.verbose,
        timeout=getattr(args, "search_timeout", None),
    )
    if args.as_ is not None and getattr(args, "as_applies", True) is False:
        # A command about the whole home (set_defaults(as_applies=False)): say so rather
        # than let --as look honoured.
        ctx.note(f"note: --as {args.as_} changes nothing here: this command is about the home")
    handler = getattr(args, "handler", None)
    if handler is None:  # no command at all
        missing = UsageError(
            "a command is required",
            hint="one of: " + ", ".join(parser.commands()),
            usage=parser.format_usage(),
        )
        return _usage_error(missing, ctx.json)
    try:
        configure_logging(level_for(args.log_level, args.verbose, ctx.quiet, os.environ))
        result = handler(args, ctx)
        if hasattr(result, "__await__"):
            import asyncio  # only for commands that need it: a delegated open does not

            result = asyncio.run(_await(result))
    except IpfsShareError as exc:
        exit_code = exit_code_for(exc)
        _report(ctx, exc.code, exc.message, cli_hint(exc), exit_code)
        return exit_code
    except KeyboardInterrupt:
        print("ipfs-share: interrupted", file=ctx.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`... | head`): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if os.environ.get("IPFS_SHARE_DEBUG"):
            raise
        _report(
            ctx,
            "internal_error",
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in ipfs-share; rerun with IPFS_SHARE_DEBUG=1 to see the traceback",
            EXIT_GENERIC,
        )
        return EXIT_GENERIC
    return EXIT_OK if result is None else int(result)


def _usage_error(exc: UsageError, as_json: bool) -> int:
    ctx = Context(json=as_json)
    if exc.usage:
        ctx.stderr.write(exc.usage)
    _report(ctx, exc.code, exc.message, exc.hint, EXIT_USAGE)
    return EXIT_USAGE


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


async def _await(awaitable: Any) -> Any:
    return await awaitable


if __name__ == "__main__":
    sys.exit(main())
