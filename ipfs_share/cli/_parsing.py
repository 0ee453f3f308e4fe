"""The CLI's argument parser: no abbreviations, usage errors as values, no secrets on argv.

Not a command module (the leading underscore keeps the dispatcher from loading it as one).

* Every parser refuses abbreviations (``--pass`` is not ``--passphrase-file``): an
  abbreviation that happens to match today can mean another option tomorrow.
* A usage error is raised as :class:`UsageError` instead of exiting, so the dispatcher
  prints it like any other error (and as JSON with ``--json``), with a hint: the nearest
  command for a mistyped one, the subcommands of a group given without one.
* :func:`refuse_secrets` turns away ``--passphrase`` (with or without ``=VALUE``, or a
  prefix of it) before anything parses the line, so the value is never printed.

>>> parser = Parser(prog="demo")
>>> sub = parser.add_subparsers(dest="command", metavar="COMMAND")
>>> _ = sub.add_parser("share"), sub.add_parser("shares")
>>> try:
...     parser.parse_args(["shre"])
... except UsageError as exc:
...     exc.hint
"did you mean 'share'?"
>>> refuse_secrets(["open", "--passphrase=hunter2"]).message
'--passphrase is not an option: a passphrase on the command line is seen by other users'
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from ipfs_share.errors import UsageError

__all__ = ["Parser", "UsageError", "refuse_secrets", "wants_json"]

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)'")
_SECRET_OPTION = "--passphrase"  # noqa: S105 - an option name, not a secret
_ON_ARGV_HINT = (
    "set IPFS_SHARE_PASSPHRASE, pass --passphrase-file FILE, or type it when asked; "
    "a passphrase on the command line stays in the shell history and shows in ps"
)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, str]:
    """A group's subcommands and their one-line help, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: helps.get(name, "") for name in action.choices}
    return {}


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` without abbreviations whose errors are raised.

    Subparsers are made of the same class (argparse uses the parent's type)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        hint = ""
        commands = _subcommands(self)
        m = _INVALID_CHOICE.search(message)
        if m and commands:
            import difflib

            near = difflib.get_close_matches(m[1], list(commands), n=1, cutoff=0.6)
            message = f"expected a command, found {m[1]!r}"
            hint = f"did you mean {near[0]!r}?" if near else f"see '{self.prog} --help'"
        elif commands and message.startswith("the following arguments are required"):
            message = f"'{self.prog}' needs a command"
            hint = "one of: " + ", ".join(commands)
            self._missing_command(message, hint, commands)
        raise UsageError(message, hint=hint, usage=self.format_usage())

    def _missing_command(self, message: str, hint: str, commands: dict[str, str]) -> NoReturn:
        # A group given alone lists what it holds, as --help would, then fails as usage.
        width = max(map(len, commands)) + 2
        listing = "".join(f"  {name:<{width}}{text}\n" for name, text in commands.items())
        usage = f"{self.format_usage()}\ncommands:\n{listing}\n"
        raise UsageError(message, hint=hint, usage=usage)

    def commands(self) -> dict[str, str]:
        """This parser's subcommands and their help (empty for a leaf command)."""
        return _subcommands(self)


def _options(argv: Sequence[str]) -> list[str]:
    """The option words of a command line (those before a ``--``)."""
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]
    return [w for w in words if w.startswith("--")]


def wants_json(argv: Sequence[str]) -> bool:
    """True if the command line asks for ``--json`` (for errors raised before it parses)."""
    return "--json" in _options(argv)


def refuse_secrets(argv: Sequence[str]) -> UsageError | None:
    """The error for a passphrase given on the command line, or None.

    ``--passphrase``, ``--passphrase=...`` and its prefixes down to ``--pass`` are refused
    (``--passphrase-file FILE`` is the option); the message never repeats the value.

    >>> refuse_secrets(["--pass", "x"]) is not None, refuse_secrets(["--passphrase-file", "f"])
    (True, None)
    """
    for word in _options(argv):
        name = word.split("=", 1)[0]
        if name == "--passphrase-file":
            continue
        if len(name) >= len("--pass") and (
            _SECRET_OPTION.startswith(name) or name.startswith(_SECRET_OPTION)
        ):
            return UsageError(
                f"{_SECRET_OPTION} is not an option: a passphrase on the command line is "
                "seen by other users",
                hint=_ON_ARGV_HINT,
            )
    return None
