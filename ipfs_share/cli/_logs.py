"""How loud the CLI is: ``-v``/``-q``, ``--log-level`` and ``IPFS_SHARE_LOG``.

Not a command module (the leading underscore keeps the dispatcher from loading it as one).

Only the library's own loggers (``ipfs_share.*``) are shown, never those of the HTTP
libraries below it, and the library logs what it does (a call to the node, the node it
chose), never a passphrase, a key or plaintext. Warnings look like the CLI's notes
(``ipfs-share: ...``); info and debug lines say their level.

>>> level_for(None, 0, False, {}), level_for(None, 2, False, {}), level_for(None, 0, True, {})
('warning', 'debug', 'error')
>>> level_for(None, 0, False, {"IPFS_SHARE_LOG": "info"}), level_for("debug", 0, True, {})
('info', 'debug')
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ipfs_share.cli.text import printable_text
from ipfs_share.errors import InvalidInputError

if TYPE_CHECKING:
    import logging

__all__ = ["LEVELS", "LOG_ENV", "configure_logging", "level_for"]

LOG_ENV = "IPFS_SHARE_LOG"
LEVELS = ("debug", "info", "warning", "error")


def level_for(given: str | None, verbose: int, quiet: bool, env: Mapping[str, str]) -> str:
    """The level to log at: ``--log-level``, else ``-v`` (info; ``-vv`` debug) or ``-q``
    (errors only), else ``IPFS_SHARE_LOG``, else warning."""
    if given is None and verbose:
        return "info" if verbose == 1 else "debug"
    if given is None and quiet:
        return "error"
    where = "--log-level"
    if given is None:
        given, where = env.get(LOG_ENV, "").strip() or "warning", LOG_ENV
    level = given.lower()
    if level not in LEVELS:
        raise InvalidInputError(
            f"{where}: expected one of {', '.join(LEVELS)}, found {given!r:.30}",
            hint=f"pass --log-level debug (or -v, -vv, -q), or fix {LOG_ENV}",
        )
    return level


def configure_logging(level: str) -> None:
    """Show the library's log records of ``level`` and above on stderr (once per process:
    a second call only changes the level). ``logging`` is imported here, not before: a
    command that ends before this (``--help``, a usage error) does not load it."""
    import logging

    logger = logging.getLogger("ipfs_share")
    logger.setLevel(level.upper())
    if not any(getattr(h, "ipfs_share_cli", False) for h in logger.handlers):
        logger.addHandler(_stderr_handler())


def _stderr_handler() -> logging.Handler:
    """A handler that writes to whatever ``sys.stderr`` is when a record comes (tests
    replace it): warnings like the CLI's notes (``ipfs-share: ...``), info and debug lines
    with their level and logger."""
    import logging

    class Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            text = printable_text(record.getMessage())
            if record.levelno >= logging.WARNING:
                return f"ipfs-share: {text}"
            return f"ipfs-share: {record.levelname.lower()}: {record.name}: {text}"

    class Stderr(logging.Handler):
        ipfs_share_cli = True  # how a second configure_logging finds it

        def emit(self, record: logging.LogRecord) -> None:
            try:
                print(self.format(record), file=sys.stderr, flush=True)
            except Exception:  # a log line must never fail the command
                self.handleError(record)

    handler = Stderr()
    handler.setFormatter(Formatter())
    return handler
