"""What every command's ``--help`` ends with: an example, the defaults, the environment.

Not a command module (the leading underscore keeps the dispatcher from loading it as one).
:func:`finish` runs over the finished parser tree: it adds ``(default: X)`` to options
whose help does not say their default, help for positionals that have none, and an
epilog with examples (where :data:`EXAMPLES` has some) and the environment variables.
Commands keep their own words; this only fills what is missing.

>>> import argparse
>>> p = argparse.ArgumentParser(prog="ipfs-share demo")
>>> _ = p.add_argument("--expires", default="7d", help="how long")
>>> _ = p.add_argument("name")
>>> finish(p)
>>> "(default: 7d)" in p.format_help() and "IPFS_SHARE_HOME" in p.format_help()
True
"""

from __future__ import annotations

import argparse

__all__ = ["EXAMPLES", "finish"]

# By command (its words after "ipfs-share"): lines shown under "examples:".
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "ipfs-share node start                      # a Kubo node of your own",
        "ipfs-share identity create alice           # your keys (asks for a passphrase)",
        "ipfs-share put report.pdf                  # encrypt and store: prints its CID",
        "ipfs-share share CID --to bob              # prints the capsule ID to give bob",
        "ipfs-share open CAPSULE -o report.pdf      # bob, on his machine",
    ),
    "put": ("ipfs-share put report.pdf", "tar c docs | ipfs-share put - --name docs.tar"),
    "files": ("ipfs-share files", "ipfs-share files rm CID"),
    "share": (
        "ipfs-share share CID --to bob,carol --expires 2w",
        "ipfs-share share CID --to bob --no-download --send",
    ),
    "shares": ("ipfs-share shares", "ipfs-share shares show CAPSULE"),
    "revoke": ("ipfs-share revoke CAPSULE", "ipfs-share revoke CAPSULE --rotate"),
    "open": (
        "ipfs-share open CAPSULE -o report.pdf",
        "ipfs-share open CAPSULE | less",
        "ipfs-share --timeout 60 open CAPSULE -o out   # wait longer for a slow network",
    ),
    "inbox": ("ipfs-share inbox",),
    "send": ("ipfs-share send CAPSULE --to bob",),
    "identity create": ("ipfs-share identity create alice",),
    "identity publish": ("ipfs-share identity publish",),
    "contacts add": ("ipfs-share contacts add bob did:key:z6Mk...",),
    "node start": ("ipfs-share node start", "ipfs-share node start --public   # other machines"),
    "node status": ("ipfs-share node status",),
    "node connect": ("ipfs-share node connect /ip4/192.168.1.20/tcp/4001/p2p/12D3KooW...",),
    "node peers": ("ipfs-share node peers",),
    "completion": (
        'eval "$(ipfs-share completion bash)"                 # in ~/.bashrc',
        "ipfs-share completion zsh > ~/.zfunc/_ipfs-share     # with fpath+=(~/.zfunc)",
        "ipfs-share completion fish > ~/.config/fish/completions/ipfs-share.fish",
    ),
}

ENVIRONMENT = (
    "IPFS_SHARE_HOME        the home: identities, state, the managed node",
    "                       (default ~/.local/share/ipfs-share)",
    "IPFS_SHARE_API         the Kubo RPC API (else the managed node, else :5001)",
    "IPFS_SHARE_PASSPHRASE  the passphrase (else --passphrase-file, else a prompt)",
    "IPFS_SHARE_TIMEOUT     seconds to search the network for a block (default 20)",
    "IPFS_SHARE_LOG         debug, info, warning (the default) or error",
)

# Help for positionals that came without: by (command, dest), then by dest alone.
_POSITIONALS: dict[tuple[str, str], str] = {
    ("identity show", "name"): "a local identity (default: the default one)",
    ("identity publish", "name"): "a local identity (default: the default one)",
    ("identity export", "name"): "the local identity to export",
    ("identity rename", "old"): "its current local name",
    ("identity rename", "new"): "the new local name",
    ("contacts add", "who"): "their did:key:... (or k51... IPNS name)",
    ("pin remote ls", "service"): "a pinning service added with 'pin remote add'",
    ("pin remote rm", "service"): "a pinning service added with 'pin remote add'",
    ("keychain ban", "who"): "a name, petname or did",
}
_BY_DEST = {
    "name": "a local identity's name",
    "petname": "your name for this contact",
    "capsule": "a capsule ID (the one 'share' printed)",
    "cids": "content CIDs ('ipfs-share files' lists them)",
    "fp": "a keychain's fingerprint ('ipfs-share keychain list')",
}


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions as usual, but keeps the lines of an epilog as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def _command(parser: argparse.ArgumentParser) -> str:
    return parser.prog.removeprefix("ipfs-share").strip()


def _fill_help(parser: argparse.ArgumentParser, command: str) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if not action.option_strings and not action.help:
            action.help = _POSITIONALS.get((command, action.dest)) or _BY_DEST.get(action.dest)
            continue
        default = action.default
        shown = action.help or ""
        if (
            action.option_strings
            and default not in (None, False, argparse.SUPPRESS, [], 0)
            and not isinstance(default, bool)
            and "default" not in shown
        ):
            action.help = f"{shown} (default: %(default)s)".lstrip()


def finish(parser: argparse.ArgumentParser) -> None:
    """Fill in defaults, positional help and epilogs over ``parser`` and its subparsers."""
    todo = [parser]
    while todo:
        current = todo.pop()
        command = _command(current)
        _fill_help(current, command)
        current.formatter_class = _Formatter
        if current.epilog is None:
            lines = []
            examples = EXAMPLES.get(command)
            if examples:
                lines += ["examples:", *(f"  {e}" for e in examples), ""]
            lines += ["environment:", *(f"  {e}" for e in ENVIRONMENT)]
            current.epilog = "\n".join(lines)
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(dict.fromkeys(action.choices.values()))
