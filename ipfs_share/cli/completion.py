"""``ipfs-share completion bash|zsh|fish``: shell completion, names included.

::

    $ eval "$(ipfs-share completion bash)"          (in ~/.bashrc)
    $ eval "$(ipfs-share completion zsh)"           (in ~/.zshrc, after compinit)
    $ ipfs-share completion fish > ~/.config/fish/completions/ipfs-share.fish

The script holds the command tree (commands, options, what each one's values are) as
JSON and, on each TAB, runs ``python -m ipfs_share.cli.completion --complete CURRENT
WORDS...``, which walks that tree and, for values that are names, reads the home: local
identities (``--as``), contacts and identities (``--to``), capsules (``open``, ``revoke``,
``shares show``), content CIDs (``files rm``). That run imports neither the command
modules nor aiohttp, opens the state database read-only and never starts a node.

>>> tree = {"subs": {"node": {"subs": {"start": {}, "status": {}}}, "open": {
...     "opts": ["-o", "--as"], "valued": {"-o": "@file", "--as": "identities"},
...     "pos": ["capsules"]}}}
>>> candidates(tree, ["node"], "st", names=lambda kind: [])
['start', 'status']
>>> candidates(tree, ["open"], "", names=lambda kind: ["bafyrei1"] if kind == "capsules" else [])
['bafyrei1']
>>> candidates(tree, ["open", "-o"], "", names=lambda kind: [])
['@file']
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["candidates", "register", "script", "tree_of"]

FILES = "@file"  # the answer that tells the shell to complete a path itself
TREE_ENV = "IPFS_SHARE_COMPLETION_TREE"
SHELLS = ("bash", "zsh", "fish")

# What an option's value is, by option name (anything else: no candidates).
_OPTION_KINDS = {
    "--as": "identities",
    "--to": "people",
    "--allow": "people",
    "--drop": "people",
    "--output": FILES,
    "-o": FILES,
    "--passphrase-file": FILES,
    "--capability": FILES,
    "--binary": FILES,
}
# What a positional is, by (command, dest) then by dest.
_POSITIONAL_KINDS = {
    ("identity", "name"): "identities",
    ("contacts", "petname"): "contacts",
    ("put", "path"): FILES,
}
_DEST_KINDS = {"capsule": "capsules", "cids": "files", "file": FILES, "path": FILES}


def tree_of(parser: argparse.ArgumentParser, command: str = "") -> dict[str, Any]:
    """The parts of the parser tree completion needs, as plain data (for JSON)."""
    node: dict[str, Any] = {"opts": [], "valued": {}, "pos": []}
    group = command.split(" ", 1)[0]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            node["subs"] = {
                name: tree_of(sub, f"{command} {name}".strip())
                for name, sub in action.choices.items()
            }
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            node["opts"].extend(s for s in action.option_strings if s.startswith("--"))
            if action.nargs != 0:
                for name in action.option_strings:
                    kind = _OPTION_KINDS.get(name, "")
                    if action.choices:
                        kind = "=" + " ".join(map(str, action.choices))
                    node["valued"][name] = kind
            continue
        kind = _POSITIONAL_KINDS.get((group, action.dest)) or _DEST_KINDS.get(action.dest, "")
        if action.choices:
            kind = "=" + " ".join(map(str, action.choices))
        node["pos"].append(kind)
    return node


def candidates(
    tree: dict[str, Any], words: Sequence[str], current: str, *, names: Callable[[str], list[str]]
) -> list[str]:
    """What may come next after ``words`` (the command line without the program name),
    starting with ``current``; ``[FILES]`` when the shell should complete a path."""
    node, position, pending = tree, 0, None
    for word in words:
        if pending is not None:
            pending = None
            continue
        if word.startswith("-"):
            if "=" not in word and word in node.get("valued", {}):
                pending = word
            continue
        subs = node.get("subs") or {}
        if word in subs:
            node, position = subs[word], 0
        else:
            position += 1
    if pending is not None:
        kind = node["valued"][pending]
    elif current.startswith("-"):
        return sorted(o for o in node.get("opts", []) if o.startswith(current))
    elif node.get("subs"):
        return [s for s in node["subs"] if s.startswith(current)]
    else:
        kinds = node.get("pos") or [""]
        kind = kinds[min(position, len(kinds) - 1)]
    if kind == FILES:
        return [FILES]
    values = kind[1:].split() if kind.startswith("=") else names(kind) if kind else []
    return sorted(v for v in dict.fromkeys(values) if v.startswith(current))


def _names(kind: str) -> list[str]:
    """Names from the home, cheaply: key files and a read-only look at the state."""
    from ipfs_share import paths

    home = paths.home_dir()
    found: list[str] = []
    if kind in ("identities", "people") and (home / "identities").is_dir():
        from ipfs_share.local.keystore import Keystore

        with contextlib.suppress(Exception):  # a damaged key file: no names, no traceback
            found += [k.name for k in Keystore(home).list()]
    queries = {
        "people": ["SELECT petname FROM contacts"],
        "contacts": ["SELECT petname FROM contacts"],
        "capsules": ["SELECT capsule FROM shares", "SELECT capsule FROM inbox"],
        "files": ["SELECT cid FROM files"],
    }.get(kind, [])
    db = home / "state.sqlite3"
    if queries and db.is_file():
        import sqlite3

        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        except sqlite3.Error:
            return found
        try:
            for query in queries:
                try:
                    found += [str(row[0]) for row in conn.execute(query)]
                except sqlite3.Error:
                    continue  # an older home without that table
        finally:
            conn.close()
    return found


_BASH = r"""# ipfs-share completion for bash: eval "$(ipfs-share completion bash)"
_ipfs_share_tree='@TREE@'
_ipfs_share_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}" IFS=$'\n' out
    out=$(IPFS_SHARE_COMPLETION_TREE="$_ipfs_share_tree" '@PYTHON@' -m ipfs_share.cli.completion \
        --complete "$cur" "${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null)
    if [[ "$out" == "@file" ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    COMPREPLY=($out)
}
complete -F _ipfs_share_complete ipfs-share
"""

_ZSH = r"""# ipfs-share completion for zsh: eval "$(ipfs-share completion zsh)" after compinit
_ipfs_share_tree='@TREE@'
_ipfs_share() {
    local -a out
    out=("${(@f)$(IPFS_SHARE_COMPLETION_TREE="$_ipfs_share_tree" '@PYTHON@' \
        -m ipfs_share.cli.completion --complete "${words[CURRENT]}" \
        "${(@)words[2,CURRENT-1]}" 2>/dev/null)}")
    if [[ "$out" == "@file" ]]; then
        _files
        return
    fi
    compadd -a out
}
compdef _ipfs_share ipfs-share
"""

_FISH = r"""# ipfs-share completion for fish:
#   ipfs-share completion fish > ~/.config/fish/completions/ipfs-share.fish
set -g __ipfs_share_tree '@TREE@'
function __ipfs_share_complete
    set -l words (commandline -opc)
    set -e words[1]
    set -l out (env IPFS_SHARE_COMPLETION_TREE=$__ipfs_share_tree '@PYTHON@' \
        -m ipfs_share.cli.completion --complete (commandline -ct) $words 2>/dev/null)
    if test "$out" = "@file"
        __fish_complete_path (commandline -ct)
        return
    end
    printf '%s\n' $out
end
complete -c ipfs-share -f -a '(__ipfs_share_complete)'
"""


def script(shell: str, tree: dict[str, Any], python: str = sys.executable) -> str:
    """The completion script for ``shell`` over ``tree``, run with ``python``."""
    data = json.dumps(tree, separators=(",", ":"), sort_keys=True)
    if "'" in data or "'" in python:
        raise ValueError("a quote in the command tree or the interpreter path")
    template = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]
    return template.replace("@TREE@", data).replace("@PYTHON@", python)


def register(subparsers: Any) -> None:
    comp = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print the completion script for SHELL: commands, options, and the "
        "names in this home (identities, contacts, capsules), read without starting the node.",
    )
    comp.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    comp.set_defaults(handler=_completion)


def _completion(args: argparse.Namespace, ctx: Any) -> None:
    from ipfs_share.cli.main import build_parser  # the whole tree: only when asked

    ctx.stdout.write(script(args.shell, tree_of(build_parser())))


def main(argv: Sequence[str]) -> int:
    """``--complete CURRENT WORDS...``: print the candidates, one a line."""
    if len(argv) < 2 or argv[0] != "--complete":
        print("usage: python -m ipfs_share.cli.completion --complete CURRENT WORDS...")
        return 2
    try:
        tree = json.loads(os.environ.get(TREE_ENV, "{}"))
    except ValueError:
        return 1
    for line in candidates(tree, argv[2:], argv[1], names=_names):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
