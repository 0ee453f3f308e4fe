"""The ``ipfs-share`` console script: as little as possible before and after the command.

``--version`` is answered here, before the dispatcher (argparse and the rest) loads.
Every other command runs :func:`ipfs_share.cli.main.main`; then the process ends with
``os._exit`` once the exit handlers ran and stdout and stderr are flushed, instead of
the interpreter tearing down every module and object one by one (for a command that
loaded the HTTP client and the crypto, that teardown costs more than the command's own
last steps). A thread still running gets the ordinary exit, which waits for it.

Not a command module (the leading underscore keeps the dispatcher from loading it as one).
"""

from __future__ import annotations

import os
import sys

__all__ = ["run", "version"]


def version() -> str:
    """What ``ipfs-share --version`` prints.

    >>> version()                                      # doctest: +ELLIPSIS
    'ipfs-share ... (Kubo v0...)'
    """
    from ipfs_share import __version__
    from ipfs_share.paths import KUBO_VERSION

    return f"ipfs-share {__version__} (Kubo {KUBO_VERSION})"


def run() -> None:
    """The console script's entry point."""
    argv = sys.argv[1:]
    if argv == ["--version"]:
        sys.stdout.write(version() + "\n")
        _exit(0)
    from ipfs_share.cli.main import main

    _exit(main(argv))


def _exit(code: int) -> None:
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(code)
    import atexit

    try:
        atexit._run_exitfuncs()  # logging's flush, temporary folders' cleanup, ...
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader of stdout left before the last bytes
        code = code or 141  # as ipfs_share.cli.main reports a closed stdout
    os._exit(code)
