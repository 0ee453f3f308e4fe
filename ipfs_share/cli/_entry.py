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

import contextlib
import os
import sys

__all__ = ["run", "version"]

STORE_ERROR = 9  # the exit code of store_error (ipfs_share.status), not imported here


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
        try:
            sys.stdout.write(version() + "\n")
        except OSError as exc:
            _exit(_unwritten(exc, 0))
        _exit(0)
    from ipfs_share.cli.main import main

    _exit(main(argv))


def _exit(code: int) -> None:
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()  # logging's flush, temporary folders' cleanup, ...
    try:
        sys.stdout.flush()
    except OSError as exc:
        code = _unwritten(exc, code)
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code)


def _unwritten(exc: OSError, code: int) -> int:
    """The exit code once the last bytes of the output could not be written (``exc``): a
    reader of stdout that left is reported as :mod:`ipfs_share.cli.main` does (141); any
    other failure (a full disk) is said on stderr, and is never a success."""
    if isinstance(exc, BrokenPipeError):
        return code or 141
    with contextlib.suppress(OSError):
        sys.stderr.write(
            f"ipfs-share: error: cannot write to stdout: {exc.strerror}\n"
            "ipfs-share: hint: free space where stdout goes, or send it elsewhere\n"
        )
    return code or STORE_ERROR
