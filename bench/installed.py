"""The package the way an installed copy runs: its bytecode compiled.

pip compiles every module when it installs a wheel. An editable install run with
``PYTHONDONTWRITEBYTECODE=1`` (set in many containers and CI images) never writes any,
so each command would first compile every ipfs-share module it imports from source
(about 120 for a put or an open: a third of a CPU-second on a small machine), which no
installed copy pays. The benches that time whole commands compile the package first and
record that they did.
"""

from __future__ import annotations

import compileall
from pathlib import Path

import ipfs_share

__all__ = ["compile_package"]


def compile_package() -> str:
    """Write the bytecode of every ipfs-share module (as pip does at install); a note
    saying so for the bench's results."""
    root = Path(ipfs_share.__file__).parent
    done = compileall.compile_dir(root, quiet=1)
    state = "compiled" if done else "compiled with errors"
    return f"bytecode {state} for {root}, as pip install does (timestamps checked)"
